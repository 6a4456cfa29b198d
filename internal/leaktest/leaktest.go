// Package leaktest fails a test that leaves goroutines running after it ends.
//
// Use it at the top of a test:
//
//	defer leaktest.Check(t)()
//
// or, when the test releases resources with t.Cleanup, register it first so
// that it runs last (cleanups run in reverse order, after deferred calls):
//
//	t.Cleanup(leaktest.Check(t))
//
// Check records the goroutines that exist when it is called. The returned
// function lists the goroutines again and, for up to a few seconds, polls until
// every goroutine that was not in the first list has exited; goroutines still
// running then are reported with their stacks through t.Errorf.
//
// The checker sees every goroutine of the process, so it cannot tell which
// test started one: do not use it in tests that run in parallel with others
// (t.Parallel), or those tests' goroutines will be blamed on this one.
package leaktest

import (
	"bytes"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultTimeout is how long Check's function waits for goroutines to exit.
// Goroutines that are shutting down (a closed connection's reader, a timer
// that fired) need a moment; a real leak does not go away.
const DefaultTimeout = 5 * time.Second

// pollInterval is the pause between two looks at the goroutine list.
const pollInterval = 10 * time.Millisecond

// Check snapshots the running goroutines and returns a function that fails t
// if goroutines started after the snapshot are still running DefaultTimeout
// after the function is called.
func Check(t testing.TB) func() {
	return CheckTimeout(t, DefaultTimeout)
}

// CheckTimeout is Check with a chosen wait.
func CheckTimeout(t testing.TB, timeout time.Duration) func() {
	t.Helper()
	before := make(map[uint64]bool)
	for _, g := range goroutines() {
		before[g.id] = true
	}
	return func() {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			leaked := leakedSince(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				var b strings.Builder
				for _, g := range leaked {
					b.WriteString("\n\n")
					b.WriteString(g.stack)
				}
				t.Errorf("leaktest: %d goroutine(s) still running %v after the test:%s", len(leaked), timeout, b.String())
				return
			}
			time.Sleep(pollInterval)
		}
	}
}

// goroutine is one entry of a full stack dump.
type goroutine struct {
	id    uint64
	stack string // the whole entry, header line included
}

// leakedSince returns the goroutines that are not in before and are not
// part of the runtime or the testing framework.
func leakedSince(before map[uint64]bool) []goroutine {
	var out []goroutine
	all := goroutines()
	for i, g := range all {
		// The first entry of runtime.Stack(all=true) is the calling
		// goroutine: the test itself, or its cleanup.
		if i == 0 || before[g.id] || ignored(g.stack) {
			continue
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// ignoredFrames mark goroutines that belong to the runtime or to the testing
// package, not to the code under test. A subtest's own goroutine runs
// testing.tRunner, and a finished subtest's goroutine is gone.
var ignoredFrames = []string{
	"testing.tRunner(",
	"testing.(*T).Run(",
	"testing.runFuzzing(",
	"testing.(*F).Fuzz(",
	"runtime.goexit0(",
	"os/signal.signal_recv(",
	"os/signal.loop(",
	"runtime.ensureSigM(",
	"runtime/trace.Start",
}

func ignored(stack string) bool {
	for _, f := range ignoredFrames {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}

// goroutines parses a full stack dump. The format ("goroutine N [state]:"
// followed by frames, entries separated by a blank line) is the one
// runtime.Stack has printed since Go 1.0.
func goroutines() []goroutine {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for _, entry := range bytes.Split(buf, []byte("\n\n")) {
		entry = bytes.TrimSpace(entry)
		rest, ok := bytes.CutPrefix(entry, []byte("goroutine "))
		if !ok {
			continue
		}
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			continue
		}
		id, err := strconv.ParseUint(string(rest[:sp]), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, goroutine{id: id, stack: string(entry)})
	}
	return out
}
