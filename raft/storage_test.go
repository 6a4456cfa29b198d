package raft

import (
	"errors"
	"reflect"
	"testing"
)

// TestEncodingRoundTrip: every encoded value decodes to itself.
func TestEncodingRoundTrip(t *testing.T) {
	e := Entry{Term: 3, Index: 1 << 40, Type: EntryConfChange, Data: []byte("payload")}
	b := AppendEntry([]byte("prefix"), &e)
	got, rest, err := DecodeEntry(b[len("prefix"):])
	if err != nil || !reflect.DeepEqual(got, e) || len(rest) != 0 {
		t.Fatalf("entry: got %+v rest %d err %v, want %+v", got, len(rest), err, e)
	}
	hs := HardState{Term: 9, Vote: 2, Commit: 77}
	if got, _, err := DecodeHardState(AppendHardState(nil, hs)); err != nil || got != hs {
		t.Fatalf("hard state: got %+v err %v, want %+v", got, err, hs)
	}
	cs := ConfState{Voters: []NodeID{1, 2}, Learners: []NodeID{3}, VotersOutgoing: []NodeID{1, 4}, LearnersNext: []NodeID{4}}
	if got, _, err := DecodeConfState(AppendConfState(nil, cs)); err != nil || !reflect.DeepEqual(got, cs) {
		t.Fatalf("conf state: got %+v err %v, want %+v", got, err, cs)
	}
	meta := SnapshotMeta{Index: 10, Term: 2, ConfState: cs}
	if got, _, err := DecodeSnapshotMeta(AppendSnapshotMeta(nil, meta)); err != nil || !reflect.DeepEqual(got, meta) {
		t.Fatalf("snapshot meta: got %+v err %v, want %+v", got, err, meta)
	}
	msgs := []Message{
		{Type: MsgApp, From: 1, To: 2, Term: 3, LogTerm: 2, Index: 5, Commit: 4, Entries: []Entry{{Term: 3, Index: 6, Data: []byte("x")}, {Term: 3, Index: 7}}},
		{Type: MsgAppResp, From: 2, To: 1, Term: 3, Index: 5, Reject: true, RejectHint: 4, LogTerm: 2},
		{Type: MsgSnap, From: 1, To: 3, Term: 3, Snapshot: &Snapshot{Meta: meta, Data: []byte("image")}},
		{Type: MsgHeartbeat, From: 1, To: 3, Term: 3, Commit: 2, Context: []byte{1, 2, 3}},
	}
	for _, m := range msgs {
		got, err := DecodeMessage(AppendMessage(nil, &m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("message: got %+v err %v, want %+v", got, err, m)
		}
	}
}

// TestDecodingRefusesBadInput: every truncation of a valid encoding, and
// hostile lengths and types, are errors, never panics.
func TestDecodingRefusesBadInput(t *testing.T) {
	m := Message{Type: MsgSnap, From: 1, To: 3, Term: 3, Entries: []Entry{{Term: 1, Index: 1, Data: []byte("d")}},
		Snapshot: &Snapshot{Meta: SnapshotMeta{Index: 1, Term: 1, ConfState: ConfState{Voters: []NodeID{1}}}, Data: []byte("s")}, Context: []byte("c")}
	b := AppendMessage(nil, &m)
	for i := 0; i < len(b); i++ {
		if _, err := DecodeMessage(b[:i]); err == nil {
			t.Fatalf("message truncated to %d of %d bytes: got no error", i, len(b))
		}
	}
	if _, err := DecodeMessage(append(b, 0)); err == nil {
		t.Fatalf("trailing byte: got no error")
	}
	bad := [][]byte{
		{0},                    // unknown type
		{byte(maxMessageType)}, // unknown type
		{byte(MsgApp), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // varint overflow
		{byte(MsgApp), 1, 2, 0, 0, 0, 0, 0, 0, 0xff, 0x7f},                               // entry count beyond the input
	}
	for _, in := range bad {
		if _, err := DecodeMessage(in); err == nil {
			t.Fatalf("decoding %x: got no error", in)
		}
	}
	e := AppendEntry(nil, &Entry{Type: 9})
	if _, _, err := DecodeEntry(e); err == nil {
		t.Fatalf("entry of unknown type: got no error")
	}
	if _, _, err := DecodeEntry([]byte{1, 1, 0, 9}); err == nil {
		t.Fatalf("entry with a length beyond the input: got no error")
	}
	if _, _, err := DecodeHardState([]byte{1}); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short hard state: got %v, want ErrShortBuffer", err)
	}
	if _, _, err := DecodeConfState([]byte{5, 1}); err == nil {
		t.Fatalf("conf state count beyond the input: got no error")
	}
	if _, _, err := DecodeSnapshotMeta(nil); err == nil {
		t.Fatalf("empty snapshot meta: got no error")
	}
}

// TestMemoryStorage: the Storage contract on MemoryStorage: bounds,
// compaction, snapshots and suffix replacement.
func TestMemoryStorage(t *testing.T) {
	ms := NewMemoryStorage()
	if err := ms.Append([]Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 2}, {Index: 4, Term: 2}}); err != nil {
		t.Fatal(err)
	}
	if first, _ := ms.FirstIndex(); first != 1 {
		t.Fatalf("first: got %d, want 1", first)
	}
	if _, err := ms.Entries(2, 6, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("entries past the end: got %v, want ErrUnavailable", err)
	}
	if ents, _ := ms.Entries(1, 5, 2*entryOverhead); len(ents) != 2 {
		t.Fatalf("entries cut by bytes: got %d, want 2", len(ents))
	}
	if ents, _ := ms.Entries(3, 3, 0); len(ents) != 0 {
		t.Fatalf("empty range: got %d entries", len(ents))
	}
	if _, err := ms.Term(5); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("term past the end: got %v, want ErrUnavailable", err)
	}
	// Suffix replacement, and a gap.
	if err := ms.Append([]Entry{{Index: 3, Term: 3}}); err != nil {
		t.Fatal(err)
	}
	if last, _ := ms.LastIndex(); last != 3 {
		t.Fatalf("last after replacing from 3: got %d, want 3", last)
	}
	if err := ms.Append([]Entry{{Index: 9, Term: 3}}); err == nil {
		t.Fatalf("append with a gap: got no error")
	}
	if err := ms.Append(nil); err != nil {
		t.Fatal(err)
	}
	cs := ConfState{Voters: []NodeID{1}}
	if _, err := ms.CreateSnapshot(9, cs, nil); err == nil {
		t.Fatalf("snapshot past the last index: got no error")
	}
	snap, err := ms.CreateSnapshot(2, cs, []byte("s"))
	if err != nil || snap.Meta.Term != 1 {
		t.Fatalf("snapshot at 2: got %+v %v, want term 1", snap.Meta, err)
	}
	if _, err := ms.CreateSnapshot(2, cs, nil); !errors.Is(err, ErrSnapshotOutOfDate) {
		t.Fatalf("same snapshot again: got %v, want ErrSnapshotOutOfDate", err)
	}
	if err := ms.Compact(2); err != nil {
		t.Fatal(err)
	}
	if err := ms.Compact(2); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacting again: got %v, want ErrCompacted", err)
	}
	if err := ms.Compact(9); err == nil {
		t.Fatalf("compacting past the end: got no error")
	}
	if _, err := ms.Entries(2, 3, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacted entries: got %v, want ErrCompacted", err)
	}
	if _, err := ms.Term(1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacted term: got %v, want ErrCompacted", err)
	}
	if term, _ := ms.Term(2); term != 1 {
		t.Fatalf("term of the snapshot index: got %d, want 1", term)
	}
	// Appending entries that are all compacted is a no-op; a partly
	// compacted batch keeps its tail.
	if err := ms.Append([]Entry{{Index: 1, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := ms.Append([]Entry{{Index: 2, Term: 1}, {Index: 3, Term: 3}, {Index: 4, Term: 3}}); err != nil {
		t.Fatal(err)
	}
	if last, _ := ms.LastIndex(); last != 4 {
		t.Fatalf("last after a partly compacted append: got %d, want 4", last)
	}
	if err := ms.ApplySnapshot(Snapshot{Meta: SnapshotMeta{Index: 1, Term: 1}}); !errors.Is(err, ErrSnapshotOutOfDate) {
		t.Fatalf("older snapshot: got %v, want ErrSnapshotOutOfDate", err)
	}
	if err := ms.ApplySnapshot(Snapshot{Meta: SnapshotMeta{Index: 8, Term: 4, ConfState: cs}}); err != nil {
		t.Fatal(err)
	}
	if first, _ := ms.FirstIndex(); first != 9 {
		t.Fatalf("first after a snapshot: got %d, want 9", first)
	}
	hs := HardState{Term: 4, Commit: 8}
	ms.SetHardState(hs)
	if got, gotCS, _ := ms.InitialState(); got != hs || !reflect.DeepEqual(gotCS, cs) {
		t.Fatalf("initial state: got %+v %+v", got, gotCS)
	}
	if ms.HardState() != hs {
		t.Fatalf("HardState: got %+v", ms.HardState())
	}
	// LimitSize and EntrySize, the helpers for other Storage implementations.
	ents := []Entry{{Data: make([]byte, 10)}, {Data: make([]byte, 10)}}
	if got := EntrySize(&ents[0]); got != 10+entryOverhead {
		t.Fatalf("EntrySize: got %d, want %d", got, 10+entryOverhead)
	}
	if got := LimitSize(ents, 1); len(got) != 1 {
		t.Fatalf("LimitSize below one entry: got %d entries, want 1", len(got))
	}
	if got := LimitSize(ents, 0); len(got) != 2 {
		t.Fatalf("LimitSize without limit: got %d entries, want 2", len(got))
	}
}

// TestConfStateHelpers: IsEmpty and Clone.
func TestConfStateHelpers(t *testing.T) {
	if !(ConfState{}).IsEmpty() || (ConfState{LearnersNext: []NodeID{1}}).IsEmpty() {
		t.Fatalf("IsEmpty: wrong answer")
	}
	cs := ConfState{Voters: []NodeID{1, 2}}
	cp := cs.Clone()
	cp.Voters[0] = 9
	if cs.Voters[0] != 1 || cp.Learners != nil {
		t.Fatalf("Clone aliases the original or invents slices: got %+v from %+v", cp, cs)
	}
	var s *Snapshot
	if !s.IsEmpty() || !(HardState{}).IsEmpty() {
		t.Fatalf("IsEmpty of zero values: got false")
	}
}
