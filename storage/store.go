package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

// Store is a durable raft log: hard state, entries and snapshots in one
// directory. It implements raft.Storage.
//
// Concurrency: all methods are safe for concurrent use. Mutations (Save,
// SetConfState, CreateSnapshot, ApplySnapshot, Compact, Close) are serialized
// among themselves, except that Save, SetConfState and Compact go on while
// a CreateSnapshot writes its snapshot file (ApplySnapshot and Close wait
// for it); reads never wait for a mutation's disk I/O, only for the short
// moment it publishes its result. Reads see a mutation only after it
// is durable.
type Store struct {
	fs   vfs.FS
	dir  string
	opts Options
	log  *slog.Logger

	// snapMu serializes the writing of snapshot files (CreateSnapshot
	// writes one without writeMu). Lock order: snapMu, writeMu, mu.
	snapMu sync.Mutex
	// writeMu serializes mutations and guards the writer state below. It is
	// held across file I/O, except a CreateSnapshot's file.
	writeMu sync.Mutex
	tail    *segment
	tailPos int64 // where the next record goes in tail
	// tailClosed: tail ends with a segment-end record; roll before writing.
	tailClosed bool
	buf        []byte
	// next is the background preparation of segment tail.seq+1, if one
	// was started (ZeroFillBackground only); see prepare.go.
	next *preparation
	// werr is the first write or sync error. The store refuses every later
	// mutation: after a failed fsync the state of the file is unknown
	// (the kernel may have dropped the dirty pages), so the only safe way on
	// is to reopen and recover.
	werr error

	// mu guards the published state below.
	mu     sync.RWMutex
	closed bool
	segs   []*segment // oldest first, consecutive sequence numbers; last is tail
	idx    logIndex
	cache  entryCache
	hs     raft.HardState
	bootCS raft.ConfState // ConfState given to SetConfState, for a log without a snapshot
	// snaps are the valid snapshots on disk, newest first.
	snaps  []snapInfo
	report RecoveryReport
}

// segment is one log file.
type segment struct {
	seq  uint64
	path string
	f    vfs.File
	size int64 // file size (capacity)
	// maxIndex is the largest entry index ever written to the segment, dead
	// or alive; the segment may be removed once the log is compacted past it.
	maxIndex raft.Index
}

// RecoveryReport says what Open found and repaired.
type RecoveryReport struct {
	// TornFile, TornOffset and TornBytes describe a torn tail that was cut
	// off (TornBytes == 0: none).
	TornFile   string
	TornOffset int64
	TornBytes  int64
	TornReason string
	// DiscardedSegment names a last segment whose creation a crash
	// interrupted (no valid header, nothing after it), which was removed.
	DiscardedSegment string
	// SkippedSnapshots lists damaged snapshot files passed over for an
	// older one.
	SkippedSnapshots []string
	// Segments is the number of segments replayed.
	Segments int
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.wal", seq) }

func parseSeq(name, suffix string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, suffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// segmentHeader is the payload of the first record of every segment. It
// repeats the state a reader needs when earlier segments have been removed.
type segmentHeader struct {
	seq        uint64
	prevLast   raft.Index // last log index when the segment was started
	offset     raft.Index // compaction point then
	offsetTerm raft.Term
	hs         raft.HardState
	cs         raft.ConfState
}

const segmentFormat = 1

func appendSegmentHeader(b []byte, h segmentHeader) []byte {
	b = binary.AppendUvarint(b, segmentFormat)
	b = binary.AppendUvarint(b, h.seq)
	b = binary.AppendUvarint(b, uint64(h.prevLast))
	b = binary.AppendUvarint(b, uint64(h.offset))
	b = binary.AppendUvarint(b, uint64(h.offsetTerm))
	b = raft.AppendHardState(b, h.hs)
	return raft.AppendConfState(b, h.cs)
}

func decodeSegmentHeader(p []byte) (segmentHeader, error) {
	var h segmentHeader
	var v [5]uint64
	for i := range v {
		x, n := binary.Uvarint(p)
		if n <= 0 {
			return h, errors.New("truncated segment header")
		}
		v[i], p = x, p[n:]
	}
	if v[0] != segmentFormat {
		return h, fmt.Errorf("unknown segment format %d", v[0])
	}
	h.seq, h.prevLast, h.offset, h.offsetTerm = v[1], raft.Index(v[2]), raft.Index(v[3]), raft.Term(v[4])
	var err error
	if h.hs, p, err = raft.DecodeHardState(p); err != nil {
		return h, err
	}
	if h.cs, p, err = raft.DecodeConfState(p); err != nil {
		return h, err
	}
	if len(p) != 0 {
		return h, fmt.Errorf("%d trailing bytes in segment header", len(p))
	}
	if h.offset > h.prevLast {
		return h, fmt.Errorf("segment header offset %d is past its last index %d", h.offset, h.prevLast)
	}
	return h, nil
}

func appendIndexTerm(b []byte, i raft.Index, t raft.Term) []byte {
	b = binary.AppendUvarint(b, uint64(i))
	return binary.AppendUvarint(b, uint64(t))
}

func decodeIndexTerm(p []byte) (raft.Index, raft.Term, error) {
	i, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, 0, errors.New("truncated index")
	}
	t, m := binary.Uvarint(p[n:])
	if m <= 0 {
		return 0, 0, errors.New("truncated term")
	}
	if n+m != len(p) {
		return 0, 0, fmt.Errorf("%d trailing bytes", len(p)-n-m)
	}
	return raft.Index(i), raft.Term(t), nil
}

// Open opens the store in dir, creating it if needed, and recovers it: the
// newest valid snapshot is loaded, every segment is replayed and checked, a
// torn tail is cut off. Damage anywhere but the tail is an error wrapping
// ErrCorrupt that names the file and offset.
func Open(fsys vfs.FS, dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Store{fs: fsys, dir: dir, opts: opts, log: opts.Logger}
	s.cache.limit = uint64(max(opts.CacheBytes, 0))
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func (s *Store) path(name string) string { return path.Join(s.dir, name) }

func (s *Store) open() error {
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	names, err := s.fs.List(s.dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	var seqs []uint64
	var snapIdx []uint64
	for _, name := range names {
		if seq, ok := parseSeq(name, ".wal"); ok {
			seqs = append(seqs, seq)
		} else if i, ok := parseSeq(name, ".snap"); ok {
			snapIdx = append(snapIdx, i)
		} else if _, ok := parseSeq(name, preparedSuffix); ok {
			// A segment prepared ahead of time and never used: its zeros
			// may not be durable, so it is not trusted.
			s.log.Info("storage: removing unused prepared segment", "file", s.path(name))
			if err := s.fs.Remove(s.path(name)); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
		} else if _, ok := parseSeq(name, ".snap.tmp"); ok {
			// A snapshot whose write a crash interrupted: never renamed, so
			// never relied on.
			s.log.Warn("storage: removing unfinished snapshot", "file", s.path(name))
			if err := s.fs.Remove(s.path(name)); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
		}
	}
	if err := s.loadSnapshots(snapIdx); err != nil {
		return err
	}
	if len(seqs) == 0 {
		if len(snapIdx) > 0 {
			return fmt.Errorf("storage: %s holds snapshots but no log segments", s.dir)
		}
		return s.rollLocked()
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			return fmt.Errorf("storage: log segment %s is missing (between %s and %s)",
				s.path(segmentName(seqs[i-1]+1)), s.path(segmentName(seqs[i-1])), s.path(segmentName(seqs[i])))
		}
	}
	return s.replay(seqs)
}

// replayState is what replay knows beyond the published state.
type replayState struct {
	// termKnown: the term of s.idx.offset is known. It is not when the
	// first segment starts after entries whose segments were removed.
	termKnown bool
	// floor is the compaction point recorded in the first segment's header
	// (or the last reset): nothing at or before it may be written.
	floor     raft.Index
	floorTerm raft.Term
	// compact is the last compaction record, if hasCompact.
	compact     raft.Index
	compactTerm raft.Term
	hasCompact  bool
}

func (s *Store) replay(seqs []uint64) error {
	var st replayState
	prevClosed, prevEnd := false, int64(0)
	for k, seq := range seqs {
		p := s.path(segmentName(seq))
		f, err := s.fs.Open(p)
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		size, err := f.Size()
		if err != nil {
			f.Close()
			return fmt.Errorf("storage: size of %s: %w", p, err)
		}
		seg := &segment{seq: seq, path: p, f: f, size: size}
		r := &segReader{f: f, name: p, size: size}
		res, err := scanSegment(r, seq, func(typ recordType, payload []byte, off, end int64) error {
			return s.replayRecord(&st, seg, k == 0, typ, payload, off, end)
		})
		if err != nil {
			f.Close()
			return err
		}
		isLast := k == len(seqs)-1
		if res.end == 0 {
			// No valid header. Only a segment whose creation was cut short
			// may look like this: the last one, after a closed segment (or
			// the very first of an empty store).
			f.Close()
			fresh := k == 0 && seq == 1 && len(s.snaps) == 0 && len(seqs) == 1
			if !isLast || !(prevClosed || fresh) {
				reason := res.tornReason
				if reason == "" {
					reason = "empty segment"
				}
				return corruptf(p, 0, "segment has no valid header: %s", reason)
			}
			s.log.Warn("storage: removing segment whose creation was interrupted", "file", p, "reason", res.tornReason)
			if err := s.fs.Remove(p); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			if err := s.fs.SyncDir(s.dir); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			s.report.DiscardedSegment = p
			if k == 0 {
				return s.rollLocked()
			}
			// The previous segment, closed, is the tail: the next write
			// starts a new segment.
			prev := s.segs[len(s.segs)-1]
			s.tail, s.tailPos, s.tailClosed = prev, prevEnd, true
			break
		}
		s.segs = append(s.segs, seg)
		prevClosed, prevEnd = res.closed, res.end
		if !isLast && !res.closed {
			if res.tornEnd > res.end {
				return corruptf(p, res.end, "%s (not the last segment)", res.tornReason)
			}
			return corruptf(p, res.end, "segment ends without a closing record")
		}
		if isLast {
			s.tail, s.tailPos, s.tailClosed = seg, res.end, res.closed
			if res.tornEnd > res.end {
				if err := s.cutTornTail(res); err != nil {
					return err
				}
			}
		}
	}
	s.report.Segments = len(s.segs)
	if err := s.resolve(&st); err != nil {
		return err
	}
	// A tail smaller than SegmentBytes (the option grew) is not extended:
	// that would add space that is not zero-filled. A batch that does not
	// fit rolls to a new segment of the new size.
	s.maybePrepareLocked()
	return nil
}

// cutTornTail overwrites a torn tail with zeros, durably, so that records
// appended later are never followed by leftovers of the torn write.
func (s *Store) cutTornTail(res scanResult) error {
	n := res.tornEnd - res.end
	s.log.Warn("storage: cutting off torn log tail", "file", s.tail.path, "offset", res.end, "bytes", n, "reason", res.tornReason)
	zeros := make([]byte, min(n, readWindow))
	for off := res.end; off < res.tornEnd; off += int64(len(zeros)) {
		b := zeros[:min(int64(len(zeros)), res.tornEnd-off)]
		if _, err := s.tail.f.WriteAt(b, off); err != nil {
			return fmt.Errorf("storage: cut torn tail of %s at offset %d: %w", s.tail.path, off, err)
		}
	}
	if err := s.tail.f.Sync(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	s.report.TornFile, s.report.TornOffset, s.report.TornBytes, s.report.TornReason = s.tail.path, res.end, n, res.tornReason
	return nil
}

func (s *Store) replayRecord(st *replayState, seg *segment, firstSeg bool, typ recordType, payload []byte, off, end int64) error {
	bad := func(format string, args ...any) error { return corruptf(seg.path, off, format, args...) }
	if off == 0 {
		if typ != recSegmentHeader {
			return bad("segment starts with a record of type %d, not a header", typ)
		}
		h, err := decodeSegmentHeader(payload)
		if err != nil {
			return bad("%v", err)
		}
		if h.seq != seg.seq {
			return bad("segment header names segment %d", h.seq)
		}
		if firstSeg {
			s.idx = logIndex{offset: h.prevLast, offsetTerm: h.offsetTerm, last: h.prevLast}
			st.termKnown = h.prevLast == h.offset
			st.floor, st.floorTerm = h.offset, h.offsetTerm
			s.hs, s.bootCS = h.hs, h.cs
		} else if h.prevLast != s.idx.last {
			return bad("segment header says the log ended at index %d before it, but the log ends at %d", h.prevLast, s.idx.last)
		}
		return nil
	}
	switch typ {
	case recSegmentHeader:
		return bad("segment header in the middle of a segment")
	case recEntry:
		e, rest, err := raft.DecodeEntry(payload)
		if err != nil || len(rest) != 0 {
			return bad("undecodable entry record (%v, %d trailing bytes)", err, len(rest))
		}
		i := e.Index
		switch {
		case i > s.idx.last+1:
			return bad("entry %d leaves a gap after index %d", i, s.idx.last)
		case i <= s.idx.offset:
			if st.termKnown || i <= st.floor {
				return bad("entry %d is at or before the start of the log (index %d)", i, s.idx.offset)
			}
			// Overwrites entries of removed segments: what is unknown
			// shrinks to floor+1..i-1.
			s.idx = logIndex{offset: i - 1, last: i - 1}
			st.termKnown = i-1 == st.floor
			if st.termKnown {
				s.idx.offsetTerm = st.floorTerm
			}
		case i <= s.idx.last:
			s.idx.truncateAfter(i - 1)
		}
		if i > s.idx.offset+1 && e.Term < s.idx.term(i-1) {
			return bad("entry %d has term %d, lower than the term %d of the entry before it", i, e.Term, s.idx.term(i-1))
		}
		s.idx.append(seg, off, end, e.Term)
		seg.maxIndex = max(seg.maxIndex, i)
	case recHardState:
		hs, rest, err := raft.DecodeHardState(payload)
		if err != nil || len(rest) != 0 {
			return bad("undecodable hard state record (%v)", err)
		}
		s.hs = hs
	case recConfState:
		cs, rest, err := raft.DecodeConfState(payload)
		if err != nil || len(rest) != 0 {
			return bad("undecodable conf state record (%v)", err)
		}
		s.bootCS = cs
	case recCompact:
		i, t, err := decodeIndexTerm(payload)
		if err != nil {
			return bad("undecodable compaction record (%v)", err)
		}
		st.compact, st.compactTerm, st.hasCompact = i, t, true
	case recReset:
		i, t, err := decodeIndexTerm(payload)
		if err != nil {
			return bad("undecodable reset record (%v)", err)
		}
		if i < s.idx.offset && st.termKnown {
			return bad("reset to index %d, before the start of the log (index %d)", i, s.idx.offset)
		}
		s.idx.reset(i, t)
		st.termKnown, st.floor, st.floorTerm = true, i, t
	case recSegmentEnd:
		i, _, err := decodeIndexTerm(payload)
		if err != nil {
			return bad("undecodable segment end record (%v)", err)
		}
		if i != s.idx.last {
			return bad("segment end record says the log ends at %d, but it ends at %d", i, s.idx.last)
		}
	}
	return nil
}

// resolve reconciles the replayed log with the newest valid snapshot, and
// fixes the compaction point.
func (s *Store) resolve(st *replayState) error {
	var si raft.Index
	var sterm raft.Term
	if len(s.snaps) > 0 {
		si, sterm = s.snaps[0].meta.Index, s.snaps[0].meta.Term
	}
	x := &s.idx
	a1 := x.offset
	switch {
	case si > 0 && (si > x.last || (si > a1 && x.term(si) != sterm) || (si == a1 && st.termKnown && x.offsetTerm != sterm)):
		// The snapshot is newer than the log, or disagrees with it: it
		// replaced the log (the reset record may have been lost in a crash
		// after the snapshot was made durable).
		s.log.Info("storage: log does not extend the snapshot; starting the log at the snapshot",
			"snapshot", si, "log_last", x.last)
		x.reset(si, sterm)
	case si < a1:
		first := s.segs[0].path
		if !st.termKnown {
			return fmt.Errorf("storage: entries %d..%d are missing before %s (removed segments) and the snapshot covers only up to %d",
				st.floor+1, a1, first, si)
		}
		return fmt.Errorf("storage: the log is compacted up to %d (in %s) but the newest valid snapshot covers only up to %d", a1, first, si)
	default:
		// a1 <= si <= last, consistent.
		c, ct := si, sterm
		switch {
		case st.hasCompact && st.compact >= a1 && st.compact <= si && (st.compact > a1 || !st.termKnown):
			if st.compact > a1 && x.term(st.compact) != st.compactTerm {
				return fmt.Errorf("storage: compaction record (index %d term %d) disagrees with the log (term %d)",
					st.compact, st.compactTerm, x.term(st.compact))
			}
			c, ct = st.compact, st.compactTerm
		case st.termKnown:
			c, ct = a1, x.offsetTerm
		}
		if c == a1 {
			x.offsetTerm = ct
		} else {
			x.compactTo(c)
		}
	}
	if s.hs.Commit > x.last {
		return fmt.Errorf("storage: the hard state's commit index %d is past the last log index %d: committed entries are missing", s.hs.Commit, x.last)
	}
	return nil
}

func (s *Store) closeFiles() {
	for _, seg := range s.segs {
		seg.f.Close()
	}
	if s.tail != nil && (len(s.segs) == 0 || s.segs[len(s.segs)-1] != s.tail) {
		s.tail.f.Close()
	}
	s.segs = nil
}

// Close stops the background preparation of the next segment, if any (its
// error, if it failed, is returned), and releases the files. Everything
// Save returned for is already durable.
func (s *Store) Close() error {
	s.snapMu.Lock() // a CreateSnapshot writing its file finishes first
	defer s.snapMu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	var errs []error
	if err := s.stopPreparingLocked(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, seg := range s.segs {
		if err := seg.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Recovery returns what Open found and repaired.
func (s *Store) Recovery() RecoveryReport {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.report
	r.SkippedSnapshots = append([]string(nil), r.SkippedSnapshots...)
	return r
}
