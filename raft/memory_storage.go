package raft

import "fmt"

// MemoryStorage is a Storage that keeps everything in memory. It is used by
// tests and the simulator's tests, and as the model the durable storage
// mirrors. It is not safe for concurrent use.
type MemoryStorage struct {
	hard HardState
	snap Snapshot
	// ents[0] is a dummy entry holding the snapshot index and term, so that
	// Term(FirstIndex()-1) always has an answer.
	// Invariant: ents[i].Index == ents[0].Index + i.
	ents []Entry
}

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{ents: make([]Entry, 1)}
}

// InitialState implements Storage.
func (ms *MemoryStorage) InitialState() (HardState, ConfState, error) {
	return ms.hard, ms.snap.Meta.ConfState, nil
}

// SetHardState records the HardState.
func (ms *MemoryStorage) SetHardState(h HardState) { ms.hard = h }

// HardState returns the recorded HardState.
func (ms *MemoryStorage) HardState() HardState { return ms.hard }

// SetConfState records the configuration reported by InitialState, for a
// fresh cluster that starts without a snapshot.
func (ms *MemoryStorage) SetConfState(cs ConfState) { ms.snap.Meta.ConfState = cs.Clone() }

func (ms *MemoryStorage) offset() Index { return ms.ents[0].Index }

// Entries implements Storage.
func (ms *MemoryStorage) Entries(lo, hi Index, maxBytes uint64) ([]Entry, error) {
	off := ms.offset()
	if lo <= off {
		return nil, ErrCompacted
	}
	if hi > ms.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	ents := ms.ents[lo-off : hi-off]
	return limitSize(ents[:len(ents):len(ents)], maxBytes), nil
}

// Term implements Storage.
func (ms *MemoryStorage) Term(i Index) (Term, error) {
	off := ms.offset()
	if i < off {
		return 0, ErrCompacted
	}
	if int(i-off) >= len(ms.ents) {
		return 0, ErrUnavailable
	}
	return ms.ents[i-off].Term, nil
}

// FirstIndex implements Storage.
func (ms *MemoryStorage) FirstIndex() (Index, error) { return ms.offset() + 1, nil }

// LastIndex implements Storage.
func (ms *MemoryStorage) LastIndex() (Index, error) { return ms.lastIndex(), nil }

func (ms *MemoryStorage) lastIndex() Index { return ms.ents[0].Index + Index(len(ms.ents)) - 1 }

// Snapshot implements Storage.
func (ms *MemoryStorage) Snapshot() (Snapshot, error) { return ms.snap, nil }

// ApplySnapshot replaces the log with snap: every entry is dropped.
func (ms *MemoryStorage) ApplySnapshot(snap Snapshot) error {
	if snap.Meta.Index <= ms.snap.Meta.Index && ms.snap.Meta.Index != 0 {
		return ErrSnapshotOutOfDate
	}
	ms.snap = snap
	ms.ents = []Entry{{Term: snap.Meta.Term, Index: snap.Meta.Index}}
	return nil
}

// CreateSnapshot records a snapshot of the state at index i (which must be
// applied, hence held) with the given configuration and data. The log is not
// compacted; call Compact for that.
func (ms *MemoryStorage) CreateSnapshot(i Index, cs ConfState, data []byte) (Snapshot, error) {
	if i <= ms.snap.Meta.Index {
		return Snapshot{}, ErrSnapshotOutOfDate
	}
	if i > ms.lastIndex() {
		return Snapshot{}, fmt.Errorf("raft: snapshot index %d is past the last index %d", i, ms.lastIndex())
	}
	ms.snap = Snapshot{
		Meta: SnapshotMeta{Index: i, Term: ms.ents[i-ms.offset()].Term, ConfState: cs.Clone()},
		Data: data,
	}
	return ms.snap, nil
}

// Compact drops every entry before compactIndex. compactIndex must not be
// past the last index; the entry at compactIndex becomes the dummy.
func (ms *MemoryStorage) Compact(compactIndex Index) error {
	off := ms.offset()
	if compactIndex <= off {
		return ErrCompacted
	}
	if compactIndex > ms.lastIndex() {
		return fmt.Errorf("raft: compact index %d is past the last index %d", compactIndex, ms.lastIndex())
	}
	i := compactIndex - off
	ents := make([]Entry, 1, Index(len(ms.ents))-i)
	ents[0] = Entry{Index: ms.ents[i].Index, Term: ms.ents[i].Term}
	ms.ents = append(ents, ms.ents[i+1:]...)
	return nil
}

// Append adds entries to the log, replacing any suffix they conflict with.
// Entries before the first held index are ignored.
func (ms *MemoryStorage) Append(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ms.offset() + 1
	if last := ents[len(ents)-1].Index; last < first {
		return nil
	}
	if ents[0].Index < first {
		ents = ents[first-ents[0].Index:]
	}
	off := ents[0].Index - ms.offset()
	switch {
	case Index(len(ms.ents)) > off:
		ms.ents = append(ms.ents[:off:off], ents...)
	case Index(len(ms.ents)) == off:
		ms.ents = append(ms.ents, ents...)
	default:
		return fmt.Errorf("raft: append leaves a gap: last index %d, appending from %d", ms.lastIndex(), ents[0].Index)
	}
	return nil
}
