package raft

import "errors"

// ErrCompacted is returned by Storage when the requested index lies in the
// prefix that was compacted into a snapshot.
var ErrCompacted = errors.New("raft: requested index is compacted")

// ErrUnavailable is returned by Storage when the requested index is past the
// last index it holds.
var ErrUnavailable = errors.New("raft: requested entry is unavailable")

// ErrSnapshotTemporarilyUnavailable is returned by Storage.Snapshot when no
// snapshot can be produced right now; raft retries later.
var ErrSnapshotTemporarilyUnavailable = errors.New("raft: snapshot temporarily unavailable")

// ErrSnapshotOutOfDate is returned when applying a snapshot older than the
// one already held.
var ErrSnapshotOutOfDate = errors.New("raft: snapshot is older than the existing one")

// Storage is the read side of the stable log, as raft sees it. The runtime
// writes to it (after persisting a Ready) and raft only reads.
//
// Concurrency: raft calls Storage only from inside its own methods (Step,
// Tick, Ready, Advance, ...), which the caller serializes. An implementation
// that is also written by another goroutine must synchronize itself.
//
// An error other than ErrCompacted / ErrUnavailable /
// ErrSnapshotTemporarilyUnavailable is treated as fatal: raft panics, because
// continuing on an unreadable log could make replicas diverge.
type Storage interface {
	// InitialState returns the persisted HardState and ConfState.
	InitialState() (HardState, ConfState, error)
	// Entries returns entries in [lo, hi). If maxBytes > 0 the result is cut
	// once its size exceeds maxBytes, but always holds at least one entry
	// when lo < hi.
	Entries(lo, hi Index, maxBytes uint64) ([]Entry, error)
	// Term returns the term of entry i, which must be in
	// [FirstIndex()-1, LastIndex()]. The term of FirstIndex()-1 is the
	// snapshot's term.
	Term(i Index) (Term, error)
	// FirstIndex is the index of the first entry held (the snapshot index + 1).
	FirstIndex() (Index, error)
	// LastIndex is the index of the last entry held, or the snapshot index if
	// no entries follow it.
	LastIndex() (Index, error)
	// Snapshot returns the most recent snapshot.
	Snapshot() (Snapshot, error)
}

// limitSize cuts ents so that their total size stays within maxBytes, keeping
// at least one entry. maxBytes == 0 means no limit.
func limitSize(ents []Entry, maxBytes uint64) []Entry {
	if maxBytes == 0 || len(ents) == 0 {
		return ents
	}
	size := ents[0].size()
	for i := 1; i < len(ents); i++ {
		size += ents[i].size()
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}

// LimitSize is limitSize for Storage implementations outside this package.
func LimitSize(ents []Entry, maxBytes uint64) []Entry { return limitSize(ents, maxBytes) }

// EntrySize is the size raft charges an entry against byte limits.
func EntrySize(e *Entry) uint64 { return e.size() }
