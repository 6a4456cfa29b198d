package raft

import (
	"errors"
	"fmt"
)

// raftLog is the log as raft sees it: the stable part in Storage, followed
// by the unstable part not yet handed back as persisted.
//
// Invariant: applied <= committed <= lastIndex().
type raftLog struct {
	storage  Storage
	unstable unstable
	// committed is the highest index known to be committed.
	committed Index
	// applied is the highest index handed to the application (through
	// Ready.CommittedEntries or a snapshot).
	applied Index
	// maxApplyBytes bounds the committed entries handed out per Ready.
	maxApplyBytes uint64
}

// unstable holds entries (and possibly a snapshot) that are not yet known to
// be persisted.
//
// Invariant: if snapshot != nil, offset == snapshot.Meta.Index+1.
// Invariant: entries[i].Index == offset+i.
type unstable struct {
	snapshot *Snapshot
	entries  []Entry
	offset   Index
	// inProgress counts the leading entries handed out in a Ready and not yet
	// acknowledged by Advance; snapInProgress likewise for the snapshot.
	inProgress     int
	snapInProgress bool
}

func newLog(storage Storage, maxApplyBytes uint64) *raftLog {
	first, err := storage.FirstIndex()
	mustStorage(err)
	last, err := storage.LastIndex()
	mustStorage(err)
	l := &raftLog{storage: storage, maxApplyBytes: maxApplyBytes}
	l.unstable.offset = last + 1
	// Everything up to the first index is covered by a snapshot, hence
	// committed and applied.
	l.committed = first - 1
	l.applied = first - 1
	return l
}

// mustStorage stops the node on a storage error that is not one of the
// expected ones: reading a log we cannot trust risks divergence.
func mustStorage(err error) {
	if err != nil {
		panic(fmt.Sprintf("raft: storage failed: %v", err))
	}
}

func (l *raftLog) firstIndex() Index {
	if l.unstable.snapshot != nil {
		return l.unstable.snapshot.Meta.Index + 1
	}
	i, err := l.storage.FirstIndex()
	mustStorage(err)
	return i
}

func (l *raftLog) lastIndex() Index {
	if n := len(l.unstable.entries); n > 0 {
		return l.unstable.offset + Index(n) - 1
	}
	if l.unstable.snapshot != nil {
		return l.unstable.snapshot.Meta.Index
	}
	i, err := l.storage.LastIndex()
	mustStorage(err)
	return i
}

func (l *raftLog) lastTerm() Term {
	t, err := l.term(l.lastIndex())
	mustStorage(err)
	return t
}

// term returns the term of entry i, ErrCompacted or ErrUnavailable.
func (l *raftLog) term(i Index) (Term, error) {
	u := &l.unstable
	if i >= u.offset {
		if k := i - u.offset; k < Index(len(u.entries)) {
			return u.entries[k].Term, nil
		}
		return 0, ErrUnavailable
	}
	if u.snapshot != nil {
		if i == u.snapshot.Meta.Index {
			return u.snapshot.Meta.Term, nil
		}
		return 0, ErrCompacted
	}
	t, err := l.storage.Term(i)
	if err == nil || errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
		return t, err
	}
	panic(fmt.Sprintf("raft: storage failed reading the term of %d: %v", i, err))
}

// termOrZero is term, with "no such entry" mapped to term 0.
func (l *raftLog) termOrZero(i Index) Term {
	t, err := l.term(i)
	if err != nil {
		return 0
	}
	return t
}

func (l *raftLog) matchTerm(i Index, t Term) bool {
	lt, err := l.term(i)
	return err == nil && lt == t
}

// isUpToDate reports whether a log ending at (lastIndex, lastTerm) is at
// least as up-to-date as ours (§5.4.1).
func (l *raftLog) isUpToDate(lastIndex Index, lastTerm Term) bool {
	ourTerm := l.lastTerm()
	return lastTerm > ourTerm || (lastTerm == ourTerm && lastIndex >= l.lastIndex())
}

// findConflict returns the index of the first entry of ents that is new or
// conflicts with the log, or 0 if all of them are already held.
func (l *raftLog) findConflict(ents []Entry) Index {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= index whose term is <=
// term (or the first index - 1 if none is known). It is the fast-backtracking
// hint (§5.3): all entries after the returned index either do not exist or
// have a larger term than the probe, so they cannot match it.
func (l *raftLog) findConflictByTerm(index Index, term Term) (Index, Term) {
	for ; index > 0; index-- {
		t, err := l.term(index)
		if err != nil {
			return index, 0
		}
		if t <= term {
			return index, t
		}
	}
	return 0, 0
}

// maybeAppend handles an append of ents after (index, logTerm) from a leader
// whose commit index is committed. It returns the last index now matching
// the leader and whether the consistency check passed (§5.3).
func (l *raftLog) maybeAppend(index Index, logTerm Term, committed Index, ents []Entry) (Index, bool) {
	if !l.matchTerm(index, logTerm) {
		return 0, false
	}
	lastNew := index + Index(len(ents))
	if ci := l.findConflict(ents); ci != 0 {
		if ci <= l.committed {
			panic(fmt.Sprintf("raft: entry %d conflicts with the committed prefix (commit %d)", ci, l.committed))
		}
		l.append(ents[ci-(index+1):]...)
	}
	// Only what this message proved to match can be committed (§5.3).
	l.commitTo(min(committed, lastNew))
	return lastNew, true
}

// append adds entries, truncating any unstable or stable suffix they
// replace. It returns the new last index.
func (l *raftLog) append(ents ...Entry) Index {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	if after := ents[0].Index - 1; after < l.committed {
		panic(fmt.Sprintf("raft: append after %d is below the commit index %d", after, l.committed))
	}
	l.unstable.truncateAndAppend(ents)
	return l.lastIndex()
}

func (u *unstable) truncateAndAppend(ents []Entry) {
	first := ents[0].Index
	switch {
	case first == u.offset+Index(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case first <= u.offset:
		// Replaces everything unstable, and possibly a stable suffix: the
		// runtime's storage truncates when it persists these.
		u.offset = first
		u.entries = append([]Entry(nil), ents...)
		u.inProgress = 0
	default:
		keep := first - u.offset
		u.entries = append(u.entries[:keep:keep], ents...)
		u.inProgress = min(u.inProgress, int(keep))
	}
}

// slice returns entries in [lo, hi), cut to maxBytes (at least one entry).
func (l *raftLog) slice(lo, hi Index, maxBytes uint64) ([]Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if fi := l.firstIndex(); lo < fi {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		panic(fmt.Sprintf("raft: slice [%d,%d) is out of bounds (last %d)", lo, hi, l.lastIndex()))
	}
	u := &l.unstable
	var ents []Entry
	if lo < u.offset {
		stored, err := l.storage.Entries(lo, min(hi, u.offset), maxBytes)
		if errors.Is(err, ErrCompacted) {
			return nil, err
		}
		if errors.Is(err, ErrUnavailable) {
			panic(fmt.Sprintf("raft: entries [%d,%d) missing from storage", lo, min(hi, u.offset)))
		}
		mustStorage(err)
		if Index(len(stored)) < min(hi, u.offset)-lo {
			// Cut by the byte limit.
			return stored, nil
		}
		ents = stored
	}
	if hi > u.offset {
		from := max(lo, u.offset)
		us := u.entries[from-u.offset : hi-u.offset]
		if len(ents) > 0 {
			combined := make([]Entry, 0, len(ents)+len(us))
			ents = append(append(combined, ents...), us...)
		} else {
			ents = us[:len(us):len(us)]
		}
	}
	return limitSize(ents, maxBytes), nil
}

// entries returns entries from i to the end, cut to maxBytes.
func (l *raftLog) entries(i Index, maxBytes uint64) ([]Entry, error) {
	if i > l.lastIndex() {
		return nil, nil
	}
	return l.slice(i, l.lastIndex()+1, maxBytes)
}

func (l *raftLog) commitTo(i Index) {
	if i <= l.committed {
		return
	}
	if i > l.lastIndex() {
		panic(fmt.Sprintf("raft: commit %d is past the last index %d", i, l.lastIndex()))
	}
	l.committed = i
}

// maybeCommit commits up to i if the entry at i is of term t. The leader
// passes its current term: only current-term entries are committed by
// counting replicas (§5.4.2, Figure 8).
func (l *raftLog) maybeCommit(i Index, t Term) bool {
	if i > l.committed && l.termOrZero(i) == t {
		l.commitTo(i)
		return true
	}
	return false
}

func (l *raftLog) appliedTo(i Index) {
	if i == 0 {
		return
	}
	if i > l.committed || i < l.applied {
		panic(fmt.Sprintf("raft: applied %d is outside [%d, %d]", i, l.applied, l.committed))
	}
	l.applied = i
}

// hasNextCommittedEnts reports whether committed entries wait to be applied.
func (l *raftLog) hasNextCommittedEnts() bool {
	return l.committed > l.applied && l.unstable.snapshot == nil
}

// nextCommittedEnts returns committed entries not yet applied, bounded by
// maxApplyBytes. While a snapshot is pending nothing is returned: it must be
// applied first.
func (l *raftLog) nextCommittedEnts() []Entry {
	if !l.hasNextCommittedEnts() {
		return nil
	}
	ents, err := l.slice(l.applied+1, l.committed+1, l.maxApplyBytes)
	mustStorage(err)
	return ents
}

// unstableEntries returns the entries not yet handed out for persistence.
func (l *raftLog) unstableEntries() []Entry {
	u := &l.unstable
	if u.inProgress >= len(u.entries) {
		return nil
	}
	return u.entries[u.inProgress:len(u.entries):len(u.entries)]
}

// acceptInProgress marks everything unstable as handed out.
func (l *raftLog) acceptInProgress() {
	l.unstable.inProgress = len(l.unstable.entries)
	if l.unstable.snapshot != nil {
		l.unstable.snapInProgress = true
	}
}

// stableTo records that entries up to (i, t) are persisted. It is ignored
// if the entry was replaced since it was handed out.
func (l *raftLog) stableTo(i Index, t Term) {
	u := &l.unstable
	if i < u.offset || i >= u.offset+Index(len(u.entries)) {
		return
	}
	if u.entries[i-u.offset].Term != t {
		return
	}
	n := int(i - u.offset + 1)
	u.entries = u.entries[n:]
	u.offset = i + 1
	u.inProgress = max(0, u.inProgress-n)
	if len(u.entries) == 0 {
		// Let the array be collected.
		u.entries = nil
	}
}

func (l *raftLog) stableSnapTo(i Index) {
	u := &l.unstable
	if u.snapshot != nil && u.snapshot.Meta.Index == i {
		u.snapshot = nil
		u.snapInProgress = false
	}
}

// restore replaces the log with a snapshot (§7).
func (l *raftLog) restore(s Snapshot) {
	l.committed = s.Meta.Index
	l.unstable = unstable{snapshot: &s, offset: s.Meta.Index + 1}
}

func (l *raftLog) snapshot() (Snapshot, error) {
	if l.unstable.snapshot != nil {
		return *l.unstable.snapshot, nil
	}
	return l.storage.Snapshot()
}
