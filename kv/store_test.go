package kv

import (
	"errors"
	"testing"
)

func TestRevisionStartsAtOneAndBumpsOncePerWrite(t *testing.T) {
	h := newHarness(t, Config{})
	if got := h.s.Revision(); got != 1 {
		t.Fatalf("initial revision: got %d, want 1", got)
	}
	if got := h.put("a", "1").Revision; got != 2 {
		t.Fatalf("first put revision: got %d, want 2", got)
	}
	h.put("b", "1")
	if got := h.s.Revision(); got != 3 {
		t.Fatalf("revision after two puts: got %d, want 3", got)
	}
	// A delete of nothing is not a write.
	if d := h.del("zzz", ""); d.Deleted != 0 || d.Revision != 3 {
		t.Fatalf("delete of missing key: got deleted %d rev %d, want 0 and 3", d.Deleted, d.Revision)
	}
	if got := h.s.Revision(); got != 3 {
		t.Fatalf("revision after empty delete: got %d, want 3", got)
	}
	// A delete of two keys is one write.
	if d := h.del("a", "c"); d.Deleted != 2 || d.Revision != 4 {
		t.Fatalf("delete range: got deleted %d rev %d, want 2 and 4", d.Deleted, d.Revision)
	}
	if got := h.s.AppliedIndex(); got != h.index {
		t.Fatalf("applied index: got %d, want %d", got, h.index)
	}
}

func TestVersionsAcrossDeleteAndRecreate(t *testing.T) {
	h := newHarness(t, Config{})
	h.put("k", "v1") // rev 2
	h.put("k", "v2") // rev 3
	kv, _ := h.get("k")
	if kv.CreateRevision != 2 || kv.ModRevision != 3 || kv.Version != 2 || string(kv.Value) != "v2" {
		t.Fatalf("after two puts: got %+v, want create 2 mod 3 version 2 value v2", kv)
	}
	h.del("k", "") // rev 4
	if _, ok := h.get("k"); ok {
		t.Fatal("deleted key still visible")
	}
	h.put("k", "v3") // rev 5
	kv, _ = h.get("k")
	if kv.CreateRevision != 5 || kv.ModRevision != 5 || kv.Version != 1 {
		t.Fatalf("recreated key: got %+v, want create 5 mod 5 version 1", kv)
	}
	// The old generation is still readable at its revisions.
	old := h.rng(RangeRequest{Key: []byte("k"), Revision: 3})
	if len(old.Kvs) != 1 || old.Kvs[0].Version != 2 || string(old.Kvs[0].Value) != "v2" {
		t.Fatalf("read at 3: got %v, want v2 version 2", keys(old.Kvs))
	}
	if old.Revision != 5 {
		t.Fatalf("header revision of old read: got %d, want 5", old.Revision)
	}
	if gone := h.rng(RangeRequest{Key: []byte("k"), Revision: 4}); len(gone.Kvs) != 0 {
		t.Fatalf("read at 4 (deleted): got %v, want nothing", keys(gone.Kvs))
	}
}

func TestPutPrevKvAndIgnoreFlags(t *testing.T) {
	h := newHarness(t, Config{})
	h.grant(7, 60)
	r := h.mustOK(Command{Put: &PutRequest{Key: []byte("k"), Value: []byte("v1"), Lease: 7, PrevKv: true}}).Put
	if r.PrevKv != nil {
		t.Fatalf("prev kv of a new key: got %+v, want nil", r.PrevKv)
	}
	r = h.mustOK(Command{Put: &PutRequest{Key: []byte("k"), IgnoreValue: true, IgnoreLease: true, PrevKv: true}}).Put
	if r.PrevKv == nil || string(r.PrevKv.Value) != "v1" {
		t.Fatalf("prev kv: got %+v, want v1", r.PrevKv)
	}
	kv, _ := h.get("k")
	if string(kv.Value) != "v1" || kv.Lease != 7 || kv.Version != 2 {
		t.Fatalf("after ignore_value+ignore_lease put: got %+v, want v1 lease 7 version 2", kv)
	}
	tests := []struct {
		name string
		req  PutRequest
		want error
	}{
		{"empty key", PutRequest{Value: []byte("x")}, ErrEmptyKey},
		{"ignore value on missing key", PutRequest{Key: []byte("nope"), IgnoreValue: true}, ErrKeyNotFound},
		{"ignore lease on missing key", PutRequest{Key: []byte("nope"), IgnoreLease: true}, ErrKeyNotFound},
		{"ignore value with a value", PutRequest{Key: []byte("k"), Value: []byte("x"), IgnoreValue: true}, ErrValueProvided},
		{"ignore lease with a lease", PutRequest{Key: []byte("k"), Lease: 7, IgnoreLease: true}, ErrLeaseProvided},
		{"unknown lease", PutRequest{Key: []byte("k"), Lease: 99}, ErrLeaseNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev := h.s.Revision()
			res := h.apply(Command{Put: &tt.req})
			wantErr(t, res.Err, tt.want)
			if res.Put != nil {
				t.Fatalf("rejected put has a response: %+v", res.Put)
			}
			if got := h.s.Revision(); got != rev {
				t.Fatalf("revision after rejected put: got %d, want %d", got, rev)
			}
		})
	}
}

func TestRangeOptions(t *testing.T) {
	h := newHarness(t, Config{})
	// rev 2..6: a b c d e, then b and d rewritten at 7 and 8.
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		h.put(k, "v"+k)
	}
	h.put("d", "z")  // rev 7, version 2
	h.put("b", "zz") // rev 8, version 2
	h.put("x/1", "1")
	h.put("x/2", "2")
	h.put("y", "y")

	tests := []struct {
		name      string
		req       RangeRequest
		want      string // key list
		wantCount int64
		wantMore  bool
	}{
		{"single key", RangeRequest{Key: []byte("c")}, "c", 1, false},
		{"missing key is empty, not an error", RangeRequest{Key: []byte("nope")}, "", 0, false},
		{"half-open range", RangeRequest{Key: []byte("b"), RangeEnd: []byte("d")}, "b,c", 2, false},
		{"empty range when end <= key", RangeRequest{Key: []byte("d"), RangeEnd: []byte("b")}, "", 0, false},
		{"from key", RangeRequest{Key: []byte("e"), RangeEnd: []byte{0}}, "e,x/1,x/2,y", 4, false},
		{"all keys", RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, "a,b,c,d,e,x/1,x/2,y", 8, false},
		{"prefix", RangeRequest{Key: []byte("x/"), RangeEnd: PrefixEnd([]byte("x/"))}, "x/1,x/2", 2, false},
		{"limit sets more and keeps count", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), Limit: 2}, "a,b", 5, true},
		{"limit equal to size", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), Limit: 5}, "a,b,c,d,e", 5, false},
		{"count only", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), CountOnly: true}, "", 5, false},
		{"sort by key descending", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortOrder: SortDescend}, "e,d,c,b,a", 5, false},
		{"sort descending with limit", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortOrder: SortDescend, Limit: 2}, "e,d", 5, true},
		{"sort by mod ascending", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortOrder: SortAscend, SortTarget: SortByMod}, "a,c,e,d,b", 5, false},
		{"sort by mod with order none sorts ascending", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortTarget: SortByMod}, "a,c,e,d,b", 5, false},
		{"sort by version descending, ties by key", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortOrder: SortDescend, SortTarget: SortByVersion}, "d,b,e,c,a", 5, false},
		{"sort by create", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortOrder: SortDescend, SortTarget: SortByCreate}, "e,d,c,b,a", 5, false},
		{"sort by value", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), SortOrder: SortAscend, SortTarget: SortByValue}, "a,c,e,d,b", 5, false},
		{"min mod revision", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), MinModRevision: 6}, "b,d,e", 5, false},
		{"max mod revision", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), MaxModRevision: 4}, "a,c", 5, false},
		{"min create revision", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), MinCreateRevision: 5}, "d,e", 5, false},
		{"max create revision", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), MaxCreateRevision: 3}, "a,b", 5, false},
		{"filter then limit", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), MinModRevision: 6, Limit: 1}, "b", 5, true},
		{"old revision", RangeRequest{Key: []byte("a"), RangeEnd: []byte("f"), Revision: 4}, "a,b,c", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.rng(tt.req)
			if got := keyList(resp.Kvs); got != tt.want {
				t.Errorf("keys: got %q, want %q", got, tt.want)
			}
			if resp.Count != tt.wantCount {
				t.Errorf("count: got %d, want %d", resp.Count, tt.wantCount)
			}
			if resp.More != tt.wantMore {
				t.Errorf("more: got %v, want %v", resp.More, tt.wantMore)
			}
			if resp.Revision != h.s.Revision() {
				t.Errorf("header revision: got %d, want %d", resp.Revision, h.s.Revision())
			}
		})
	}

	t.Run("keys only drops values", func(t *testing.T) {
		resp := h.rng(RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), KeysOnly: true})
		if len(resp.Kvs) != 2 || resp.Kvs[0].Value != nil || resp.Kvs[1].Value != nil || resp.Kvs[1].Version != 2 {
			t.Fatalf("got %+v, want a and b without values", resp.Kvs)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := h.s.Range(&RangeRequest{})
		wantErr(t, err, ErrEmptyKey)
		_, err = h.s.Range(&RangeRequest{Key: []byte("a"), Revision: h.s.Revision() + 1})
		wantErr(t, err, ErrFutureRev)
	})
}

func TestDeleteRangePrevKvs(t *testing.T) {
	h := newHarness(t, Config{})
	h.put("a", "1")
	h.put("b", "2")
	h.put("c", "3")
	res := h.mustOK(Command{DeleteRange: &DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, PrevKv: true}})
	if got := keys(res.DeleteRange.PrevKvs); got != "a=1@2 b=2@3 c=3@4" {
		t.Fatalf("prev kvs: got %q, want all three", got)
	}
	wantErr(t, h.apply(Command{DeleteRange: &DeleteRangeRequest{}}).Err, ErrEmptyKey)
}

func TestApplyRejectsBadCommandsAndReplays(t *testing.T) {
	h := newHarness(t, Config{})
	res, err := h.s.Apply(1, []byte{codecVersion, 99})
	if err != nil {
		t.Fatalf("bad command is a failure: %v", err)
	}
	wantErr(t, res.Err, ErrBadCommand)
	if got := h.s.AppliedIndex(); got != 1 {
		t.Fatalf("applied index after rejected command: got %d, want 1", got)
	}
	if _, err := h.s.Apply(1, nil); !errors.Is(err, ErrIndexNotIncreasing) {
		t.Fatalf("replayed index: got %v, want ErrIndexNotIncreasing", err)
	}
	// Gaps are fine: the runtime skips entries that are not commands.
	if _, err := h.s.Apply(5, nil); err != nil {
		t.Fatalf("index gap: %v", err)
	}
}

func TestReturnedBytesSurviveLaterWrites(t *testing.T) {
	h := newHarness(t, Config{})
	buf := []byte("value-1")
	b, _ := EncodeCommand(Command{Put: &PutRequest{Key: []byte("k"), Value: buf}})
	if _, err := h.s.Apply(1, b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X' // the runtime may reuse the entry buffer
	}
	h.index = 1
	kv, _ := h.get("k")
	h.put("k", "value-2")
	if string(kv.Key) != "k" || string(kv.Value) != "value-1" {
		t.Fatalf("got %q=%q, want k=value-1", kv.Key, kv.Value)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{MaxTxnOps: -1}); err == nil {
		t.Fatal("negative MaxTxnOps accepted")
	}
}
