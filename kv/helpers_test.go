package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// harness applies commands to a store through the encoding, as the runtime
// does.
type harness struct {
	t     testing.TB
	s     *Store
	index uint64
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, s: s}
}

func (h *harness) apply(c Command) Result {
	h.t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		h.t.Fatalf("encode %+v: %v", c, err)
	}
	h.index++
	res, err := h.s.Apply(h.index, b)
	if err != nil {
		h.t.Fatalf("apply: %v", err)
	}
	return res
}

func (h *harness) mustOK(c Command) Result {
	h.t.Helper()
	res := h.apply(c)
	if res.Err != nil {
		h.t.Fatalf("apply %s: unexpected rejection %v", describe(c), res.Err)
	}
	return res
}

func (h *harness) put(k, v string) *PutResponse {
	h.t.Helper()
	return h.mustOK(Command{Put: &PutRequest{Key: []byte(k), Value: []byte(v)}}).Put
}

func (h *harness) putLease(k, v string, lease int64) Result {
	h.t.Helper()
	return h.apply(Command{Put: &PutRequest{Key: []byte(k), Value: []byte(v), Lease: lease}})
}

func (h *harness) del(k, end string) *DeleteRangeResponse {
	h.t.Helper()
	return h.mustOK(Command{DeleteRange: &DeleteRangeRequest{Key: []byte(k), RangeEnd: bs(end)}}).DeleteRange
}

func (h *harness) grant(id, ttl int64) {
	h.t.Helper()
	h.mustOK(Command{LeaseGrant: &LeaseGrantRequest{ID: id, TTL: ttl}})
}

func (h *harness) rng(r RangeRequest) *RangeResponse {
	h.t.Helper()
	resp, err := h.s.Range(&r)
	if err != nil {
		h.t.Fatalf("range %q..%q: %v", r.Key, r.RangeEnd, err)
	}
	return resp
}

func (h *harness) get(k string) (KeyValue, bool) {
	h.t.Helper()
	resp := h.rng(RangeRequest{Key: []byte(k)})
	if len(resp.Kvs) == 0 {
		return KeyValue{}, false
	}
	return resp.Kvs[0], true
}

func (h *harness) snapshot() []byte {
	h.t.Helper()
	var buf bytes.Buffer
	if err := h.s.Snapshot(&buf); err != nil {
		h.t.Fatal(err)
	}
	return buf.Bytes()
}

// stateBytes is the snapshot without the applied index and checksum: the
// state a rejected command must leave alone.
func (h *harness) stateBytes() []byte {
	h.t.Helper()
	b := h.snapshot()
	b = b[len(snapshotMagic)+1 : len(b)-4]
	_, n := binary.Uvarint(b)
	return b[n:]
}

// bs is nil for "", so tests can write range ends as strings.
func bs(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// keys renders kvs as "k=v@mod" for compact comparisons.
func keys(kvs []KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		parts = append(parts, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision))
	}
	return strings.Join(parts, " ")
}

func keyList(kvs []KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		parts = append(parts, string(kv.Key))
	}
	return strings.Join(parts, ",")
}

func describe(c Command) string {
	switch {
	case c.Put != nil:
		return fmt.Sprintf("put %q", c.Put.Key)
	case c.DeleteRange != nil:
		return fmt.Sprintf("delete %q..%q", c.DeleteRange.Key, c.DeleteRange.RangeEnd)
	case c.Txn != nil:
		return "txn"
	case c.Compact != nil:
		return fmt.Sprintf("compact %d", c.Compact.Revision)
	case c.LeaseGrant != nil:
		return fmt.Sprintf("grant %d", c.LeaseGrant.ID)
	case c.LeaseRevoke != nil:
		return fmt.Sprintf("revoke %d", c.LeaseRevoke.ID)
	}
	return "empty command"
}

func wantErr(t testing.TB, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("got error %v, want %v", got, want)
	}
}

// checkIndex fails the test unless the index's tree and map hold the same
// records: every key once in each, pointing to the same record.
func checkIndex(t testing.TB, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	s.idx.tree.Ascend(func(it item) bool {
		n++
		if rec, ok := s.idx.keys[string(it.key)]; !ok || rec != it.rec {
			t.Fatalf("key %q: the tree's record is not the map's (in map: %v)", it.key, ok)
		}
		if !bytes.Equal(it.key, it.rec.key) {
			t.Fatalf("tree item %q holds the record of %q", it.key, it.rec.key)
		}
		return true
	})
	if n != len(s.idx.keys) {
		t.Fatalf("the tree holds %d keys, the map %d", n, len(s.idx.keys))
	}
}
