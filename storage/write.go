package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/lockstep/lockstep/raft"
)

// maxRecordOverhead bounds what an entry record adds to len(Data): the
// header plus four uvarints and the type byte.
const maxRecordOverhead = recordHeaderSize + 4*binary.MaxVarintLen64 + 1

// Save durably appends ents and records hs, with one write and one fsync
// (group commit: the caller batches everything it has into one Save).
//
// Entries that overlap the log replace it from the first of them on (a
// conflicting suffix is truncated), as in raft.MemoryStorage.Append; entries
// at or before the compaction point are ignored; ents must be consecutive and
// must not leave a gap after the last index. An empty hs, or one equal to the
// current hard state, is not written.
//
// Ordering: the entries are written before the hard state, in the same
// write, so a hard state is never durable without the entries it refers to.
// When Save returns nil, both are durable; when it returns an error, neither
// is known to be, and the store refuses further mutations.
//
// Save keeps references to the entries' Data (for the cache); the caller
// must not modify it afterwards.
func (s *Store) Save(hs raft.HardState, ents []raft.Entry) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	// writeMu makes this goroutine the only one that changes idx and hs,
	// so reading them without mu is safe.
	for i := 1; i < len(ents); i++ {
		if ents[i].Index != ents[0].Index+raft.Index(i) {
			return fmt.Errorf("storage: save: entries are not consecutive: index %d follows %d", ents[i].Index, ents[i-1].Index)
		}
	}
	if len(ents) > 0 {
		first := s.idx.offset + 1
		switch {
		case ents[len(ents)-1].Index < first:
			ents = nil
		case ents[0].Index < first:
			ents = ents[first-ents[0].Index:]
		}
	}
	if len(ents) > 0 && ents[0].Index > s.idx.last+1 {
		return fmt.Errorf("storage: save: entry %d leaves a gap after the last index %d", ents[0].Index, s.idx.last)
	}
	writeHS := !hs.IsEmpty() && hs != s.hs
	if len(ents) == 0 && !writeHS {
		return nil
	}
	est := recordHeaderSize + 3*binary.MaxVarintLen64
	for i := range ents {
		n := len(ents[i].Data) + maxRecordOverhead
		if n-recordHeaderSize > s.opts.MaxRecordBytes {
			return fmt.Errorf("storage: save: entry %d of %d bytes exceeds the record limit of %d bytes", ents[i].Index, len(ents[i].Data), s.opts.MaxRecordBytes)
		}
		est += n
		if est > s.opts.MaxBatchBytes {
			return fmt.Errorf("storage: save: batch of %d entries exceeds the batch limit of %d bytes", len(ents), s.opts.MaxBatchBytes)
		}
	}
	if err := s.reserveLocked(est); err != nil {
		return err
	}

	seg, base := s.tail, s.tailPos
	buf := s.buf[:0]
	for i := range ents {
		var start int
		buf, start = beginRecord(buf)
		buf = raft.AppendEntry(buf, &ents[i])
		finishRecord(buf, start, seg.seq, recEntry)
	}
	if writeHS {
		var start int
		buf, start = beginRecord(buf)
		buf = raft.AppendHardState(buf, hs)
		finishRecord(buf, start, seg.seq, recHardState)
	}
	s.buf = buf
	if err := s.commitLocked(); err != nil {
		return err
	}

	// Durable: publish. Record offsets are recomputed from the encoding
	// (each entry record's length is in its header).
	s.mu.Lock()
	if len(ents) > 0 {
		if ents[0].Index <= s.idx.last {
			s.idx.truncateAfter(ents[0].Index - 1)
			s.cache.truncateAfter(ents[0].Index - 1)
		}
		off := base
		for i := range ents {
			n := int64(recordHeaderSize + binary.LittleEndian.Uint32(buf[off-base:]))
			s.idx.append(seg, off, off+n, ents[i].Term)
			off += n
		}
		seg.maxIndex = max(seg.maxIndex, ents[len(ents)-1].Index)
		s.cache.append(ents)
	}
	if writeHS {
		s.hs = hs
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) writableLocked() error {
	if s.closed {
		return ErrClosed
	}
	return s.werr
}

// fail records the first write or sync error; see werr.
func (s *Store) fail(err error) error {
	if s.werr == nil {
		s.werr = err
	}
	return err
}

// reserveLocked makes sure the tail segment can take n more bytes plus a
// segment-end record, rolling to a new segment if not.
func (s *Store) reserveLocked(n int) error {
	if !s.tailClosed && s.tailPos+int64(n)+segmentEndSize <= s.tail.size {
		return nil
	}
	return s.rollLocked()
}

// segmentEndSize bounds the size of a segment-end record.
const segmentEndSize = recordHeaderSize + 2*binary.MaxVarintLen64

// commitLocked writes s.buf at the tail's write position, in one write,
// syncs, and advances tailPos. The bytes it overwrites are written zeros
// when the segment was zero-filled (see Options.ZeroFill), so the sync is a
// pure data flush: nothing but the batch is written.
func (s *Store) commitLocked() error {
	if _, err := s.tail.f.WriteAt(s.buf, s.tailPos); err != nil {
		return s.fail(fmt.Errorf("storage: write %s at offset %d: %w", s.tail.path, s.tailPos, err))
	}
	if err := s.tail.f.Sync(); err != nil {
		return s.fail(fmt.Errorf("storage: sync %s: %w", s.tail.path, err))
	}
	s.tailPos += int64(len(s.buf))
	if cap(s.buf) > 2*s.opts.MaxBatchBytes {
		s.buf = nil
	}
	s.maybePrepareLocked()
	return nil
}

// writeRecordLocked durably appends one small record.
func (s *Store) writeRecordLocked(typ recordType, payload []byte) error {
	if err := s.reserveLocked(recordHeaderSize + len(payload)); err != nil {
		return err
	}
	s.buf = appendRecord(s.buf[:0], s.tail.seq, typ, payload)
	return s.commitLocked()
}

// rollLocked closes the tail segment (if any) with a durable segment-end
// record and starts the next one. The order makes recovery unambiguous: a
// segment after a closed one can only be missing its header because its
// creation was interrupted.
//
// The next segment is prepared (created, preallocated, zero-filled and
// synced) under a temporary name first, by the background preparation or
// here, and only then is anything written to the log: a failed preparation
// leaves the log as it was, and does not stop the store.
func (s *Store) rollLocked() error {
	seq := uint64(1)
	if s.tail != nil {
		seq = s.tail.seq + 1
	}
	f, err := s.takePreparedLocked(seq)
	if err != nil {
		return err
	}
	if s.tail != nil && !s.tailClosed {
		s.buf = appendRecord(s.buf[:0], s.tail.seq, recSegmentEnd, appendIndexTerm(nil, s.idx.last, 0))
		if _, err := s.tail.f.WriteAt(s.buf, s.tailPos); err != nil {
			f.Close()
			return s.fail(fmt.Errorf("storage: write %s at offset %d: %w", s.tail.path, s.tailPos, err))
		}
		if err := s.tail.f.Sync(); err != nil {
			f.Close()
			return s.fail(fmt.Errorf("storage: sync %s: %w", s.tail.path, err))
		}
		s.tailPos += int64(len(s.buf))
		s.tailClosed = true
	}
	// A crash from here on leaves the temporary name (removed by Open) or
	// the segment's name on a file of zeros with or without a durable
	// header; without one, Open discards it, as the last segment after a
	// closed one.
	p := s.path(segmentName(seq))
	if err := s.fs.Rename(s.path(preparedName(seq)), p); err != nil {
		f.Close()
		return s.fail(fmt.Errorf("storage: %w", err))
	}
	seg := &segment{seq: seq, path: p, f: f, size: s.opts.SegmentBytes}
	h := segmentHeader{seq: seq, prevLast: s.idx.last, offset: s.idx.offset, offsetTerm: s.idx.offsetTerm, hs: s.hs, cs: s.bootCS}
	s.buf = appendRecord(s.buf[:0], seq, recSegmentHeader, appendSegmentHeader(nil, h))
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	s.tail, s.tailPos, s.tailClosed = seg, 0, false
	if err := s.commitLocked(); err != nil {
		return err
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return s.fail(fmt.Errorf("storage: %w", err))
	}
	return nil
}

// SetConfState durably records the configuration InitialState reports while
// there is no snapshot: the bootstrap configuration of a new cluster.
func (s *Store) SetConfState(cs raft.ConfState) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	if err := s.writeRecordLocked(recConfState, raft.AppendConfState(nil, cs)); err != nil {
		return err
	}
	s.mu.Lock()
	s.bootCS = cs.Clone()
	s.mu.Unlock()
	return nil
}

// Compact discards the entries before i: i becomes the entry before
// FirstIndex. i must be held and covered by a snapshot (i <= the snapshot's
// index), so that nothing is lost. Whole segments are removed once nothing
// in them is needed, also not for falling back to the oldest kept snapshot.
func (s *Store) Compact(i raft.Index) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	if i <= s.idx.offset {
		return raft.ErrCompacted
	}
	if i > s.idx.last {
		return fmt.Errorf("storage: compact index %d is past the last index %d", i, s.idx.last)
	}
	if len(s.snaps) == 0 || i > s.snaps[0].meta.Index {
		return fmt.Errorf("storage: compact index %d is past the snapshot index %d", i, s.snapIndexLocked())
	}
	t := s.idx.term(i)
	if err := s.writeRecordLocked(recCompact, appendIndexTerm(nil, i, t)); err != nil {
		return err
	}
	s.mu.Lock()
	s.idx.compactTo(i)
	s.cache.dropThrough(i)
	s.mu.Unlock()
	return s.removeSegmentsLocked(0)
}

func (s *Store) snapIndexLocked() raft.Index {
	if len(s.snaps) == 0 {
		return 0
	}
	return s.snaps[0].meta.Index
}

// removeSegmentsLocked removes the oldest segments that hold nothing needed:
// every segment before seq deadBefore, and segments whose entries are all at
// or before both the compaction point and the oldest kept snapshot. The tail
// is never removed.
func (s *Store) removeSegmentsLocked(deadBefore uint64) error {
	bound := s.idx.offset
	if n := len(s.snaps); n > 0 {
		bound = min(bound, s.snaps[n-1].meta.Index)
	}
	k := 0
	for k < len(s.segs)-1 && (s.segs[k].seq < deadBefore || s.segs[k].maxIndex <= bound) {
		k++
	}
	if k == 0 {
		return nil
	}
	s.mu.Lock()
	gone := s.segs[:k:k]
	s.segs = append([]*segment(nil), s.segs[k:]...)
	s.mu.Unlock()
	for _, seg := range gone {
		seg.f.Close()
		if err := s.fs.Remove(seg.path); err != nil {
			return s.fail(fmt.Errorf("storage: %w", err))
		}
	}
	// Removal need not be durable for correctness (a segment that comes
	// back is consistent history), but make it so, so that a crash cannot
	// bring back a non-contiguous set of segments.
	if err := s.fs.SyncDir(s.dir); err != nil {
		return s.fail(fmt.Errorf("storage: %w", err))
	}
	return nil
}
