package kv

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
)

func TestCompactionKeepsReadsAtAndAfterTheRevision(t *testing.T) {
	h := newHarness(t, Config{})
	h.put("a", "1") // 2
	h.put("a", "2") // 3
	h.put("b", "1") // 4
	h.del("b", "")  // 5
	h.put("c", "1") // 6
	h.del("c", "")  // 7
	h.put("c", "2") // 8
	h.put("a", "3") // 9

	at := func(rev int64) string {
		resp := h.rng(RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
		return keys(resp.Kvs)
	}
	want := map[int64]string{}
	for rev := int64(1); rev <= 9; rev++ {
		want[rev] = at(rev)
	}

	res := h.mustOK(Command{Compact: &CompactRequest{Revision: 6}})
	if res.Compact.Revision != 9 || h.s.Revision() != 9 || h.s.CompactRevision() != 6 {
		t.Fatalf("compact: got resp rev %d, store rev %d, compact rev %d, want 9 9 6",
			res.Compact.Revision, h.s.Revision(), h.s.CompactRevision())
	}
	for rev := int64(6); rev <= 9; rev++ {
		if got := at(rev); got != want[rev] {
			t.Errorf("read at %d after compaction: got %q, want %q", rev, got, want[rev])
		}
	}
	_, err := h.s.Range(&RangeRequest{Key: []byte("a"), Revision: 5})
	wantErr(t, err, ErrCompacted)
	// b is gone for good: nothing of it is readable at or after 6.
	if it, ok := h.s.idx.tree.Get(item{key: []byte("b")}); ok {
		t.Errorf("fully deleted key b still indexed with %d versions", len(it.rec.versions))
	}
	// a keeps its version as of 6 (a=2@3) and the later a=3@9.
	if it, _ := h.s.idx.tree.Get(item{key: []byte("a")}); len(it.rec.versions) != 2 {
		t.Errorf("a retains %d versions, want 2", len(it.rec.versions))
	}

	if st := h.s.Stats(); st.Keys != 2 || st.Versions != 5 || st.Bytes != 2+4 {
		t.Errorf("stats after compaction: got %+v, want 2 keys, 5 versions (a@3 a@9 c@6 c@7 c@8), 6 bytes", st)
	}
	wantErr(t, h.apply(Command{Compact: &CompactRequest{Revision: 6}}).Err, ErrCompacted)
	wantErr(t, h.apply(Command{Compact: &CompactRequest{Revision: 5}}).Err, ErrCompacted)
	wantErr(t, h.apply(Command{Compact: &CompactRequest{Revision: 10}}).Err, ErrFutureRev)
	h.mustOK(Command{Compact: &CompactRequest{Revision: 9}})
	if got := at(9); got != want[9] {
		t.Errorf("read at 9 after compacting to 9: got %q, want %q", got, want[9])
	}
	// Versions still continue the generation after compaction.
	h.put("a", "4")
	if kv, _ := h.get("a"); kv.Version != 4 || kv.CreateRevision != 2 {
		t.Errorf("put after compaction: got version %d create %d, want 4 and 2", kv.Version, kv.CreateRevision)
	}
}

func TestCompactionKeepsDeleteAtTheCompactRevisionForEvents(t *testing.T) {
	h := newHarness(t, Config{})
	h.put("a", "1") // 2
	h.del("a", "")  // 3
	h.mustOK(Command{Compact: &CompactRequest{Revision: 3}})
	evs, _, err := h.s.Events(3, []byte("a"), nil, 0)
	if err != nil || len(evs) != 1 || evs[0].Type != EventDelete {
		t.Fatalf("events from compact revision: got %v %v, want the delete", evs, err)
	}
	_, _, err = h.s.Events(2, []byte("a"), nil, 0)
	wantErr(t, err, ErrCompacted)
	h.put("z", "1") // 4
	h.mustOK(Command{Compact: &CompactRequest{Revision: 4}})
	if _, ok := h.s.idx.tree.Get(item{key: []byte("a")}); ok {
		t.Fatal("tombstone survived a later compaction")
	}
}

// TestCompactionFreesMemory writes many large versions of few keys and
// checks that compaction gives the memory back.
func TestCompactionFreesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 64 MiB")
	}
	h := newHarness(t, Config{})
	val := bytes.Repeat([]byte("x"), 16<<10)
	for i := range 4000 {
		h.mustOK(Command{Put: &PutRequest{Key: []byte{byte('a' + i%4)}, Value: val}})
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	h.mustOK(Command{Compact: &CompactRequest{Revision: h.s.Revision()}})
	after := heap()
	if len(h.s.log) != 1 {
		t.Errorf("log after compaction: got %d entries, want 1 (the write at the compact revision)", len(h.s.log))
	}
	if after > before/4 {
		t.Fatalf("heap after compaction: got %d bytes, want well under %d (before)", after, before/4)
	}
	runtime.KeepAlive(h)
}

// Compaction that removes most keys rebuilds the index's map, whose
// buckets would otherwise stay at the size of the most keys ever held.
func TestCompactionShrinksTheIndex(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 5000 {
		h.put(fmt.Sprintf("k%05d", i), "v")
	}
	h.del("k00000", "k04500")
	checkIndex(t, h.s)
	if h.s.idx.peak != 5000 {
		t.Fatalf("peak %d before compaction, want 5000", h.s.idx.peak)
	}
	h.mustOK(Command{Compact: &CompactRequest{Revision: h.s.Revision()}})
	// The tombstones written at the compact revision stay until the next one.
	h.put("other", "v")
	h.mustOK(Command{Compact: &CompactRequest{Revision: h.s.Revision()}})
	checkIndex(t, h.s)
	if got := h.s.idx.len(); got != 501 {
		t.Fatalf("%d keys indexed after compaction, want 501", got)
	}
	if h.s.idx.peak != 501 {
		t.Fatalf("the map was not rebuilt: peak %d with %d keys", h.s.idx.peak, h.s.idx.len())
	}
	if got := h.rng(RangeRequest{Key: []byte("k04999")}); len(got.Kvs) != 1 {
		t.Fatalf("a kept key is not readable after the rebuild: %v", got.Kvs)
	}
}
