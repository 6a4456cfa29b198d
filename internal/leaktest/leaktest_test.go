package leaktest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps what is reported instead of failing
// the real test, so that the checker itself can be tested.
type recorder struct {
	testing.TB // nil: calling anything not overridden panics, on purpose
	mu         sync.Mutex
	errors     []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

// leakyWorker blocks until stop is closed; its name shows up in the stack.
func leakyWorker(stop chan struct{}) { <-stop }

func TestCheckReportsAGoroutineThatOutlivesTheTest(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)

	r := &recorder{}
	done := CheckTimeout(r, 100*time.Millisecond)
	go leakyWorker(stop)
	done()

	got := r.failures()
	if len(got) != 1 {
		t.Fatalf("got %d failures, want 1: %q", len(got), got)
	}
	if !strings.Contains(got[0], "leakyWorker") {
		t.Errorf("got failure %q, want it to contain the leaked goroutine's stack (leakyWorker)", got[0])
	}
}

func TestCheckWaitsForAGoroutineThatIsShuttingDown(t *testing.T) {
	r := &recorder{}
	done := CheckTimeout(r, 5*time.Second)
	go func() { time.Sleep(50 * time.Millisecond) }()
	done()
	if got := r.failures(); len(got) != 0 {
		t.Errorf("got failures %q, want none", got)
	}
}

func TestCheckIgnoresGoroutinesThatExistedBefore(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	go leakyWorker(stop)

	r := &recorder{}
	done := CheckTimeout(r, 100*time.Millisecond)
	done()
	if got := r.failures(); len(got) != 0 {
		t.Errorf("got failures %q, want none", got)
	}
}

func TestCheckPassesACleanTest(t *testing.T) {
	defer Check(t)()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done() }()
	}
	wg.Wait()
}

func TestGoroutinesParsesTheCurrentGoroutine(t *testing.T) {
	gs := goroutines()
	if len(gs) == 0 {
		t.Fatal("got no goroutines, want at least the caller")
	}
	if !strings.Contains(gs[0].stack, "TestGoroutinesParsesTheCurrentGoroutine") {
		t.Errorf("got first goroutine %q, want the caller", gs[0].stack)
	}
}
