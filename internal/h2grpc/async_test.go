package h2grpc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// running reports the calls the server's connections count as started
// and not yet ended.
func running(s *Server) int {
	return sumConns(s, func(c *conn) int { return c.running })
}

func waitRunning(t *testing.T, s *Server, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); running(s) != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls running, want %d", running(s), want)
		}
	}
}

// An Async call ends by Answer, at once on the reader or later from
// another goroutine, or by Continue; each call gets its own answer, and
// none is left counted as running.
func TestAsyncCallsGetTheirOwnAnswers(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	f := start(t, Config{Unary: map[string]Unary{}, Async: map[string]Async{echoMethod: func(ctx context.Context, b []byte, call Call) {
		var req pb.RangeRequest
		if err := req.Unmarshal(b); err != nil {
			call.Answer(nil, err)
			return
		}
		switch string(req.Key[:4]) {
		case "now/":
			call.Answer(echo(ctx, b))
		case "late":
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Millisecond)
				call.Answer(echo(ctx, b))
			}()
		case "cont":
			call.Continue(func() (Message, error) { return echo(ctx, b) })
		default:
			call.Answer(nil, status.Errorf(codes.FailedPrecondition, "refused %s", req.Key))
		}
	}}})
	cc := f.dial(t)
	var calls sync.WaitGroup
	for i := range 200 {
		calls.Add(1)
		go func() {
			defer calls.Done()
			kind := []string{"now/", "late", "cont", "fail"}[i%4]
			key, value := fmt.Appendf(nil, "%s%d", kind, i), bytes.Repeat([]byte{byte(i)}, i)
			resp, err := call(context.Background(), cc, key, value)
			if kind == "fail" {
				if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "refused "+string(key) {
					t.Errorf("call %d: got %v, want FAILED_PRECONDITION for its key", i, err)
				}
				return
			}
			if err != nil {
				t.Errorf("call %d (%s): %v", i, kind, err)
				return
			}
			if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Key, key) || !bytes.Equal(resp.Kvs[0].Value, value) {
				t.Errorf("call %d (%s) got another call's answer: %v", i, kind, resp.Kvs)
			}
		}()
	}
	calls.Wait()
	waitRunning(t, f.srv, 0)
}

// Answer does not wait for the client's window: an answer larger than it
// is written by a goroutine of the server's, once the client reads.
func TestAsyncAnswerDoesNotWaitForTheClientsWindow(t *testing.T) {
	value := bytes.Repeat([]byte("w"), 1<<20) // the client's stream window is 64 KiB
	answer := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: value}}}
	returned := make(chan struct{})
	f := start(t, Config{Unary: map[string]Unary{}, Async: map[string]Async{echoMethod: func(_ context.Context, _ []byte, call Call) {
		go func() {
			call.Answer(answer, nil)
			close(returned)
		}()
	}}})
	r := dialRaw(t, f.addr)
	if err := r.write(r.request(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Answer waited for the client's window")
	}
	var b []byte
	b = appendWindowUpdate(b, 0, 1<<30)
	b = appendWindowUpdate(b, 1, 1<<30)
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	got, status := 0, ""
	r.readUntil("the answer did not arrive: %v", func(fm http2.Frame) bool {
		switch fm := fm.(type) {
		case *http2.DataFrame:
			got += len(fm.Data())
		case *http2.MetaHeadersFrame:
			if fm.StreamEnded() {
				status = headerValue(fm, "grpc-status")
				return true
			}
		}
		return false
	})
	if want := 5 + answer.Size(); got != want || status != "0" {
		t.Fatalf("got %d bytes and grpc-status %q, want %d and 0", got, status, want)
	}
	waitRunning(t, f.srv, 0)
}

// An Async call not answered by its grpc-timeout ends with
// DEADLINE_EXCEEDED; its answer, when it comes, is dropped.
func TestAsyncCallUnansweredAtItsDeadlineEnds(t *testing.T) {
	calls := make(chan Call, 1)
	f := start(t, Config{Unary: map[string]Unary{}, Async: map[string]Async{echoMethod: func(_ context.Context, _ []byte, call Call) {
		calls <- call
	}}})
	r := dialRaw(t, f.addr)
	begin := time.Now()
	if err := r.write(r.request(1, hpack.HeaderField{Name: "grpc-timeout", Value: "200m"})); err != nil {
		t.Fatal(err)
	}
	status := ""
	r.readUntil("the unanswered call did not end: %v", func(fm http2.Frame) bool {
		if h, ok := fm.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 && h.StreamEnded() {
			status = headerValue(h, "grpc-status")
			return true
		}
		return false
	})
	if status != "4" {
		t.Fatalf("grpc-status %q, want 4 (DEADLINE_EXCEEDED)", status)
	}
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Fatalf("ended after %v, before its 200 ms deadline", d)
	}
	(<-calls).Answer(&pb.RangeResponse{}, nil) // too late: dropped
	waitRunning(t, f.srv, 0)
	// The connection goes on.
	if err := r.write(r.request(3)); err != nil {
		t.Fatal(err)
	}
	(<-calls).Answer(&pb.RangeResponse{Count: 3}, nil)
	r.readUntil("the next call was not answered: %v", func(fm http2.Frame) bool {
		h, ok := fm.(*http2.MetaHeadersFrame)
		if ok && h.StreamID == 1 {
			t.Fatalf("stream 1 got more frames after its status: %v", h)
		}
		return ok && h.StreamID == 3 && h.StreamEnded()
	})
}

// A method may be in Unary or Async, not both.
func TestNewRejectsAMethodOnBothPaths(t *testing.T) {
	_, err := New(Config{Fallback: http.NotFoundHandler(), MaxRecvMsgSize: 1, StreamWindow: 1 << 16, ConnWindow: 1 << 16,
		Unary: map[string]Unary{echoMethod: echo}, Async: map[string]Async{echoMethod: func(context.Context, []byte, Call) {}}})
	if err == nil || !strings.Contains(err.Error(), echoMethod) {
		t.Fatalf("New accepted a method on both paths: %v", err)
	}
}

// Answer does not wait for queue space either: with the queue a byte short
// of maxQueued and nothing draining it, the answer is queued past it.
func TestAsyncAnswerDoesNotWaitForQueueSpace(t *testing.T) {
	srv, err := New(Config{Fallback: http.NotFoundHandler(), MaxRecvMsgSize: 1 << 10, StreamWindow: 1 << 16, ConnWindow: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := newConn(srv, a) // no reader or writer runs: nothing drains the queue
	st := &stream{c: c, id: 1, contentType: "application/grpc", short: true}
	st.ctx, st.cancel = context.WithCancel(context.Background())
	c.mu.Lock()
	c.registerLocked(st)
	c.running = 1
	c.queue = make([]byte, maxQueued-1)
	c.mu.Unlock()
	returned := make(chan struct{})
	go func() {
		st.Answer(&pb.RangeResponse{Count: 1}, nil)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Answer waited for queue space")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.done || c.running != 0 || len(c.queue) <= maxQueued-1 {
		t.Fatalf("after Answer: stream done %v, %d running, %d bytes queued; want done, 0, more than %d", st.done, c.running, len(c.queue), maxQueued-1)
	}
}

// Continue on a call the client reset does not call its function, and
// the call stops counting as running.
func TestAsyncContinueAfterAResetDoesNothing(t *testing.T) {
	calls := make(chan Call, 1)
	f := start(t, Config{Unary: map[string]Unary{}, Async: map[string]Async{echoMethod: func(_ context.Context, _ []byte, call Call) {
		calls <- call
	}}})
	r := dialRaw(t, f.addr)
	b := r.request(1)
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	call := <-calls
	if err := r.write(appendRST(nil, 1, http2.ErrCodeCancel)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); sumConns(f.srv, func(c *conn) int { return len(c.streams) }) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the reset stream is still open")
		}
	}
	called := make(chan struct{}, 1)
	call.Continue(func() (Message, error) {
		called <- struct{}{}
		return &pb.RangeResponse{}, nil
	})
	waitRunning(t, f.srv, 0)
	select {
	case <-called:
		t.Fatal("Continue ran its function for a reset stream")
	default:
	}
}
