package storage

import (
	"fmt"

	"github.com/lockstep/lockstep/raft"
)

var _ raft.Storage = (*Store)(nil)

// readChunk bounds one read of entry records from a segment, in bytes (a
// single larger record is read whole).
const readChunk = 1 << 20

// InitialState implements raft.Storage: the durable hard state, and the
// configuration of the newest snapshot (or the one given to SetConfState if
// there is no snapshot).
func (s *Store) InitialState() (raft.HardState, raft.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.HardState{}, raft.ConfState{}, ErrClosed
	}
	if len(s.snaps) > 0 {
		return s.hs, s.snaps[0].meta.ConfState.Clone(), nil
	}
	return s.hs, s.bootCS.Clone(), nil
}

// HardState returns the durable hard state.
func (s *Store) HardState() raft.HardState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hs
}

// FirstIndex implements raft.Storage.
func (s *Store) FirstIndex() (raft.Index, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.idx.offset + 1, nil
}

// LastIndex implements raft.Storage.
func (s *Store) LastIndex() (raft.Index, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.idx.last, nil
}

// Term implements raft.Storage.
func (s *Store) Term(i raft.Index) (raft.Term, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return 0, ErrClosed
	case i < s.idx.offset:
		return 0, raft.ErrCompacted
	case i > s.idx.last:
		return 0, raft.ErrUnavailable
	}
	return s.idx.term(i), nil
}

// Snapshot implements raft.Storage. It reads and verifies the newest
// snapshot file; with no snapshot it returns an empty one carrying the
// bootstrap configuration.
func (s *Store) Snapshot() (raft.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return raft.Snapshot{}, ErrClosed
	}
	if len(s.snaps) == 0 {
		return raft.Snapshot{Meta: raft.SnapshotMeta{ConfState: s.bootCS.Clone()}}, nil
	}
	meta, data, err := s.readSnapshotFile(s.snaps[0].path, true)
	if err != nil {
		return raft.Snapshot{}, err
	}
	return raft.Snapshot{Meta: meta, Data: data}, nil
}

// Entries implements raft.Storage. Recent entries come from the cache; older
// ones are read from their segments, and their checksums verified again.
func (s *Store) Entries(lo, hi raft.Index, maxBytes uint64) ([]raft.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return nil, ErrClosed
	case lo <= s.idx.offset:
		return nil, raft.ErrCompacted
	case hi > s.idx.last+1:
		return nil, raft.ErrUnavailable
	case lo >= hi:
		return nil, nil
	}
	cacheFirst := s.cache.first()
	if cacheFirst == 0 {
		cacheFirst = s.idx.last + 1
	}
	var out []raft.Entry
	var size uint64
	// full accounts for e, which would be entry number n of the result,
	// and says whether it no longer fits.
	full := func(e *raft.Entry, n int) bool {
		size += raft.EntrySize(e)
		return maxBytes > 0 && n > 0 && size > maxBytes
	}
	if lo < cacheFirst {
		var err error
		var done bool
		out, done, err = s.readLocked(out, lo, min(hi, cacheFirst), full)
		if err != nil || done {
			return out, err
		}
		lo = cacheFirst
	}
	for i := lo; i < hi; i++ {
		e := &s.cache.ents[i-cacheFirst]
		if full(e, len(out)) {
			break
		}
		out = append(out, *e)
	}
	return out, nil
}

// readLocked appends entries lo..hi-1 read from disk to out, stopping early
// (done) when full says so.
func (s *Store) readLocked(out []raft.Entry, lo, hi raft.Index, full func(*raft.Entry, int) bool) ([]raft.Entry, bool, error) {
	var buf []byte
	for i := lo; i < hi; {
		sp := s.idx.spanFor(i)
		j := int(i - sp.first)
		k := int(min(hi, sp.lastIndex()+1) - sp.first) // entries j..k-1 of the span
		start := int64(sp.offs[j])
		// Read as many entries as fit in readChunk (at least one).
		n := j + 1
		for n < k && int64(sp.offs[n])-start < readChunk {
			n++
		}
		end := sp.end
		if n < len(sp.offs) {
			end = int64(sp.offs[n])
		}
		if int64(cap(buf)) < end-start {
			buf = make([]byte, end-start)
		}
		b := buf[:end-start]
		if _, err := sp.seg.f.ReadAt(b, start); err != nil {
			return out, true, fmt.Errorf("storage: read %s at offset %d: %w", sp.seg.path, start, err)
		}
		for m := j; m < n; m++ {
			off := int64(sp.offs[m]) - start
			typ, payload, _, err := decodeRecord(b[off:], sp.seg.seq)
			if err != nil {
				return out, true, corruptf(sp.seg.path, start+off, "%v", err)
			}
			e, rest, err := raft.DecodeEntry(payload)
			if typ != recEntry || err != nil || len(rest) != 0 || e.Index != i {
				return out, true, corruptf(sp.seg.path, start+off, "record is not entry %d (type %d, index %d, %v)", i, typ, e.Index, err)
			}
			if full(&e, len(out)) {
				return out, true, nil
			}
			out = append(out, e)
			i++
		}
	}
	return out, false, nil
}
