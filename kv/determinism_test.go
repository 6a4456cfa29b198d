package kv

import (
	"bytes"
	"testing"
)

// TestReplicasFedTheSameCommandsAgree applies one random command stream to
// two stores, and to a third that restores from the first's snapshot halfway
// through. Results and snapshot bytes must match exactly, and the retained
// history must read back the state each revision had.
func TestReplicasFedTheSameCommandsAgree(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		a := newHarness(t, Config{MaxTxnOps: 8})
		b := newHarness(t, Config{MaxTxnOps: 8})
		var c *harness
		gen := newCmdGen(seed, func() (int64, int64) { return a.s.Revision(), a.s.CompactRevision() })
		states := map[int64]string{1: ""} // revision -> every key at that revision
		all := RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
		var rejected int
		const n = 1500
		for i := 1; i <= n; i++ {
			cmd := gen.next()
			ra, err := a.s.Apply(uint64(i), cmd)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := b.s.Apply(uint64(i), cmd)
			if err != nil {
				t.Fatal(err)
			}
			if render(ra) != render(rb) {
				t.Fatalf("seed %d command %d: results differ:\n%s\n%s", seed, i, render(ra), render(rb))
			}
			if ra.Err != nil {
				rejected++
			}
			if c != nil {
				rc, err := c.s.Apply(uint64(i), cmd)
				if err != nil {
					t.Fatal(err)
				}
				if render(ra) != render(rc) {
					t.Fatalf("seed %d command %d: restored replica differs:\n%s\n%s", seed, i, render(ra), render(rc))
				}
			}
			states[a.s.Revision()] = keys(a.rng(all).Kvs)

			if i == n/2 {
				c = newHarness(t, Config{MaxTxnOps: 8})
				if err := c.s.Restore(bytes.NewReader(a.snapshot())); err != nil {
					t.Fatalf("seed %d: restore: %v", seed, err)
				}
				checkIndex(t, c.s)
			}
			if i%100 == 0 {
				checkHistory(t, a, states)
				checkIndex(t, a.s)
				if c != nil {
					checkIndex(t, c.s)
				}
			}
		}
		sa, sb, sc := a.snapshot(), b.snapshot(), c.snapshot()
		if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
			t.Fatalf("seed %d: snapshots differ (%d, %d, %d bytes)", seed, len(sa), len(sb), len(sc))
		}
		if rejected == 0 || rejected == n || a.s.CompactRevision() == 0 {
			t.Fatalf("seed %d: stream too tame: %d of %d rejected, compact revision %d", seed, rejected, n, a.s.CompactRevision())
		}
		t.Logf("seed %d: revision %d, compacted at %d, %d rejected, snapshot %d bytes",
			seed, a.s.Revision(), a.s.CompactRevision(), rejected, len(sa))
	}
}

// checkHistory reads every retained revision back and replays the retained
// events over the compacted state, which must end at the current state.
func checkHistory(t *testing.T, h *harness, states map[int64]string) {
	t.Helper()
	compact, rev := h.s.CompactRevision(), h.s.Revision()
	for r := max(compact, 1); r <= rev; r++ {
		want, ok := states[r]
		if !ok {
			continue // a revision inside a txn that no command ended at
		}
		got := keys(h.rng(RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: r}).Kvs)
		if got != want {
			t.Fatalf("read at revision %d:\n got %s\nwant %s", r, got, want)
		}
	}
	start := max(compact, 1)
	model := map[string]KeyValue{}
	for _, kv := range h.rng(RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: start}).Kvs {
		model[string(kv.Key)] = kv
	}
	evs, next, err := h.s.Events(start+1, []byte{0}, []byte{0}, 1<<30)
	if err != nil || next != rev+1 {
		t.Fatalf("events from %d: next %d err %v", start+1, next, err)
	}
	for _, e := range evs {
		if e.Type == EventPut {
			model[string(e.Kv.Key)] = e.Kv
		} else {
			delete(model, string(e.Kv.Key))
		}
	}
	cur := h.rng(RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}).Kvs
	if len(cur) != len(model) {
		t.Fatalf("replayed events give %d keys, store has %d", len(model), len(cur))
	}
	for _, kv := range cur {
		if m := model[string(kv.Key)]; keys([]KeyValue{m}) != keys([]KeyValue{kv}) || m.Version != kv.Version || m.CreateRevision != kv.CreateRevision || m.Lease != kv.Lease {
			t.Fatalf("replayed events give %+v, store has %+v", m, kv)
		}
	}
}
