package kv

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestReadsSeeWholeCommands runs Range, Events and Snapshot while Apply
// writes x and y together in each txn: no read may see them differ.
func TestReadsSeeWholeCommands(t *testing.T) {
	h := newHarness(t, Config{})
	const n = 500
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := h.s.Range(&RangeRequest{Key: []byte("x"), RangeEnd: []byte("z")})
				if err != nil {
					t.Error(err)
					return
				}
				if len(resp.Kvs) == 2 && !bytes.Equal(resp.Kvs[0].Value, resp.Kvs[1].Value) {
					t.Errorf("torn read at revision %d: %s", resp.Revision, keys(resp.Kvs))
					return
				}
				if len(resp.Kvs) == 1 {
					t.Errorf("torn read at revision %d: only %s", resp.Revision, keys(resp.Kvs))
					return
				}
				// The compact revision may move between the two calls.
				if _, _, err := h.s.Events(h.s.CompactRevision(), []byte("x"), []byte("z"), 10); err != nil && !errors.Is(err, ErrCompacted) {
					t.Error(err)
					return
				}
				var buf bytes.Buffer
				if err := h.s.Snapshot(&buf); err != nil {
					t.Error(err)
					return
				}
				// The image, taken while Apply runs, is of one instant.
				r, _ := New(Config{})
				if err := r.Restore(&buf); err != nil {
					t.Error(err)
					return
				}
				img, _ := r.Range(&RangeRequest{Key: []byte("x"), RangeEnd: []byte("z")})
				if len(img.Kvs) == 1 || (len(img.Kvs) == 2 && !bytes.Equal(img.Kvs[0].Value, img.Kvs[1].Value)) {
					t.Errorf("torn snapshot at revision %d: %s", img.Revision, keys(img.Kvs))
					return
				}
			}
		}()
	}
	for i := range n {
		v := fmt.Sprint(i)
		h.mustOK(txnCmd(nil, []RequestOp{opPutKV("x", v), opPutKV("y", v)}, nil))
		if i%100 == 99 {
			h.mustOK(Command{Compact: &CompactRequest{Revision: h.s.Revision() - 10}})
		}
	}
	close(done)
	wg.Wait()
}
