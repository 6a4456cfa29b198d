// Package servertest holds test support shared by the server's in-process
// tests and the multi-process e2e tests: a write workload through etcd
// clients that remembers which writes were acknowledged, so a test can check
// that none was lost across a failure (Writes), and a random workload whose
// history is checked for linearizability (LinHistory).
package servertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writes is a running workload: each writer puts keys w<i>/<n> with value
// <n>, one at a time, until Stop.
type Writes struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex        // guards acked
	acked map[string]string // key -> value of every acknowledged put
}

// StartWrites starts writers goroutines; writer i uses clients[i%len]. Each
// put gets perPut to complete. The caller must call Stop.
func StartWrites(ctx context.Context, clients []*clientv3.Client, writers int, perPut time.Duration) *Writes {
	w := &Writes{stop: make(chan struct{}), acked: map[string]string{}}
	for i := 0; i < writers; i++ {
		cli := clients[i%len(clients)]
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d/%05d", i, n), fmt.Sprint(n)
				pctx, cancel := context.WithTimeout(ctx, perPut)
				_, err := cli.Put(pctx, k, v)
				cancel()
				if err == nil {
					w.mu.Lock()
					w.acked[k] = v
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

// Acked returns how many puts were acknowledged so far.
func (w *Writes) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// WaitAcked waits until n puts were acknowledged; after within it stops the
// workload and fails the test.
func (w *Writes) WaitAcked(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for w.Acked() < n {
		if time.Now().After(deadline) {
			w.Stop()
			t.Fatalf("only %d writes acknowledged within %v, want %d", w.Acked(), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the writers and waits for them. It is safe to call twice.
func (w *Writes) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// Check reads every acknowledged key through cli and reports the first one
// missing or holding another value.
func (w *Writes) Check(ctx context.Context, cli *clientv3.Client, opts ...clientv3.OpOption) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range w.acked {
		get, err := cli.Get(ctx, k, opts...)
		if err != nil {
			return err
		}
		if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != v {
			return fmt.Errorf("acknowledged %s=%s, read %v", k, v, get.Kvs)
		}
	}
	return nil
}
