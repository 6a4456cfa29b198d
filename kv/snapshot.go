package kv

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// Snapshot image, format version 1:
//
//	image   = magic:"LKKVSNAP" version:byte body crc:uint32le
//	body    = applied:uvarint rev:int compactRev:int
//	          n:uvarint lease*n  n:uvarint key*n
//	lease   = id:int ttl:int                      (ascending id)
//	key     = key:bytes n:uvarint version*n       (ascending key)
//	version = main:int sub:uvarint ver:uvarint [create:int lease:int value:bytes if ver > 0]
//
// crc is CRC-32C of everything before it. Leases' key sets and the event log
// are derived state, rebuilt on Restore. The image is a function of the state
// alone, so equal states give equal bytes.

const snapshotMagic = "LKKVSNAP"

const snapshotVersion = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Snapshot writes a consistent point-in-time image of the whole state to w.
// It holds the read lock only to copy the index (a slice header per key),
// not while writing: a version, once appended, is never modified, so the
// copied headers stay a valid image of that instant while Apply goes on.
func (s *Store) Snapshot(w io.Writer) error { return s.CaptureSnapshot()(w) }

// CaptureSnapshot takes the image Snapshot writes as of now and returns the
// function that writes it. Taking it is quick (the index is copied under
// the read lock); writing it costs as much as the state is large, and may
// run later, concurrently with Apply, on any goroutine, once.
func (s *Store) CaptureSnapshot() func(io.Writer) error {
	s.mu.RLock()
	applied, rev, compactRev := s.applied, s.rev, s.compactRev
	leases := make([]lease, 0, len(s.leases))
	for _, l := range s.leases {
		leases = append(leases, lease{id: l.id, ttl: l.ttl})
	}
	recs := make([]keyRecord, 0, s.idx.len())
	s.idx.tree.Ascend(func(it item) bool {
		recs = append(recs, keyRecord{key: it.key, versions: it.rec.versions})
		return true
	})
	s.mu.RUnlock()
	slices.SortFunc(leases, func(a, b lease) int { return cmp.Compare(a.id, b.id) })
	return func(w io.Writer) error { return writeSnapshot(w, applied, rev, compactRev, leases, recs) }
}

func writeSnapshot(w io.Writer, applied uint64, rev, compactRev int64, leases []lease, recs []keyRecord) error {
	h := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	sw := snapWriter{w: bw}
	sw.raw([]byte(snapshotMagic))
	sw.raw([]byte{snapshotVersion})
	sw.uvarint(applied)
	sw.varint(rev)
	sw.varint(compactRev)
	sw.uvarint(uint64(len(leases)))
	for _, l := range leases {
		sw.varint(l.id)
		sw.varint(l.ttl)
	}
	sw.uvarint(uint64(len(recs)))
	for _, rec := range recs {
		sw.bytes(rec.key)
		sw.uvarint(uint64(len(rec.versions)))
		for i := range rec.versions {
			v := &rec.versions[i]
			sw.varint(v.main)
			sw.uvarint(uint64(v.sub))
			sw.uvarint(uint64(v.ver))
			if !v.tombstone() {
				sw.varint(v.create)
				sw.varint(v.lease)
				sw.bytes(v.value)
			}
		}
		if sw.err != nil {
			break
		}
	}
	if sw.err != nil {
		return fmt.Errorf("kv: write snapshot: %w", sw.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("kv: write snapshot: %w", err)
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, h.Sum32())); err != nil {
		return fmt.Errorf("kv: write snapshot: %w", err)
	}
	return nil
}

type snapWriter struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
	err error
}

func (w *snapWriter) raw(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

func (w *snapWriter) uvarint(v uint64) { w.raw(binary.AppendUvarint(w.buf[:0], v)) }
func (w *snapWriter) varint(v int64)   { w.raw(binary.AppendVarint(w.buf[:0], v)) }
func (w *snapWriter) bytes(b []byte)   { w.uvarint(uint64(len(b))); w.raw(b) }

// Restore replaces the whole state with the image read from r. It verifies
// the checksum and every invariant before touching the store; on any error
// (wrapping ErrCorruptSnapshot, or the reader's error) the store is
// unchanged. Notify is not called: events between the old and new state are
// not reported, so the server must resynchronise its watchers.
func (s *Store) Restore(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("kv: read snapshot: %w", err)
	}
	st, err := parseSnapshot(data)
	if err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idx, s.rev, s.compactRev, s.applied = st.idx, st.rev, st.compactRev, st.applied
	s.log, s.leases = st.log, st.leases
	s.w = writeState{}
	return nil
}

// restored is the state parsed from an image, not yet installed.
type restored struct {
	idx        *index
	rev        int64
	compactRev int64
	applied    uint64
	log        []logEntry
	leases     map[int64]*lease
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

// parseSnapshot checks and decodes a whole image. Every length and count is
// checked against the bytes left before anything is allocated.
func parseSnapshot(data []byte) (*restored, error) {
	head := len(snapshotMagic) + 1
	if len(data) < head+4 {
		return nil, corrupt("image is %d bytes, shorter than header and checksum", len(data))
	}
	if string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, corrupt("bad magic %q", data[:len(snapshotMagic)])
	}
	if v := data[len(snapshotMagic)]; v != snapshotVersion {
		return nil, corrupt("unknown format version %d", v)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return nil, corrupt("checksum mismatch: image says %#08x, content hashes to %#08x", sum, got)
	}

	d := decoder{b: body, off: head, base: ErrCorruptSnapshot}
	st := &restored{idx: newIndex(), leases: make(map[int64]*lease)}
	st.applied = d.uvarint("applied index")
	st.rev = d.varint("revision")
	st.compactRev = d.varint("compact revision")
	if d.err != nil {
		return nil, d.err
	}
	if st.rev < 1 || st.compactRev < 0 || st.compactRev > st.rev {
		return nil, corrupt("revision %d and compact revision %d out of order", st.rev, st.compactRev)
	}

	nl := d.count("lease", 2)
	var lastID int64
	for i := 0; i < nl && d.err == nil; i++ {
		id, ttl := d.varint("lease id"), d.varint("lease ttl")
		switch {
		case d.err != nil:
		case id == 0 || ttl > MaxLeaseTTL:
			return nil, corrupt("lease %d with ttl %d invalid", id, ttl)
		case i > 0 && id <= lastID:
			return nil, corrupt("lease %d not after lease %d", id, lastID)
		}
		lastID = id
		st.leases[id] = &lease{id: id, ttl: ttl}
	}

	nk := d.count("key", 5)
	var lastKey []byte
	for i := 0; i < nk && d.err == nil; i++ {
		key := d.bytes("key")
		if d.err != nil {
			break
		}
		if len(key) == 0 || (i > 0 && bytes.Compare(key, lastKey) <= 0) {
			return nil, corrupt("key %q empty or not after %q", key, lastKey)
		}
		lastKey = key
		rec := &keyRecord{key: bytes.Clone(key)}
		if err := parseVersions(&d, st, rec); err != nil {
			return nil, err
		}
		st.idx.insert(rec)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(body) {
		return nil, corrupt("%d trailing bytes", len(body)-d.off)
	}

	slices.SortFunc(st.log, func(a, b logEntry) int {
		if c := cmp.Compare(a.main, b.main); c != 0 {
			return c
		}
		ai, _ := a.rec.find(a.main)
		bi, _ := b.rec.find(b.main)
		return cmp.Compare(a.rec.versions[ai].sub, b.rec.versions[bi].sub)
	})
	for i := 1; i < len(st.log); i++ {
		a, b := st.log[i-1], st.log[i]
		ai, _ := a.rec.find(a.main)
		bi, _ := b.rec.find(b.main)
		if a.main == b.main && a.rec.versions[ai].sub == b.rec.versions[bi].sub {
			return nil, corrupt("keys %q and %q both written at revision %d.%d",
				a.rec.key, b.rec.key, a.main, a.rec.versions[ai].sub)
		}
	}
	return st, nil
}

// parseVersions reads rec's history and checks it is one the store could
// have produced: revisions increasing and readable, generations consistent,
// leases granted.
func parseVersions(d *decoder, st *restored, rec *keyRecord) error {
	nv := d.count("version", 3)
	if d.err != nil {
		return d.err
	}
	if nv == 0 {
		return corrupt("key %q has no versions", rec.key)
	}
	rec.versions = make([]version, nv)
	for j := range rec.versions {
		v := &rec.versions[j]
		v.main = d.varint("mod revision")
		sub, ver := d.uvarint("sub revision"), d.uvarint("version")
		if ver > 0 {
			v.create = d.varint("create revision")
			v.lease = d.varint("lease")
			if val := d.bytes("value"); val != nil {
				v.value = bytes.Clone(val)
			}
		}
		if d.err != nil {
			return d.err
		}
		if sub > 1<<62 || ver > 1<<62 {
			return corrupt("key %q: sub revision %d or version %d too large", rec.key, sub, ver)
		}
		v.sub, v.ver = int64(sub), int64(ver)
		if err := checkVersion(st, rec, j); err != nil {
			return err
		}
		if v.main >= st.compactRev {
			st.log = append(st.log, logEntry{main: v.main, rec: rec})
		}
	}
	if last, live := rec.latest(); live && last.lease != 0 {
		l := st.leases[last.lease]
		if l.keys == nil {
			l.keys = make(map[string]struct{})
		}
		l.keys[string(rec.key)] = struct{}{}
	}
	return nil
}

func checkVersion(st *restored, rec *keyRecord, j int) error {
	v := &rec.versions[j]
	bad := func(why string) error {
		return corrupt("key %q version at revision %d: %s", rec.key, v.main, why)
	}
	switch {
	case v.main < 1 || v.main > st.rev:
		return bad("revision outside 1..current")
	case j > 0 && v.main <= rec.versions[j-1].main:
		return bad("revision not after the previous version")
	case v.main < st.compactRev && (j > 0 || v.tombstone()):
		return bad("history before the compact revision retained")
	case v.tombstone():
		if j > 0 && rec.versions[j-1].tombstone() {
			return bad("delete of a deleted key")
		}
		return nil
	case v.create < 1 || v.create > v.main:
		return bad("create revision outside 1..mod revision")
	case v.lease != 0 && st.leases[v.lease] == nil && j == len(rec.versions)-1:
		return bad(fmt.Sprintf("attached to lease %d, which does not exist", v.lease))
	}
	if j == 0 {
		return nil
	}
	prev := &rec.versions[j-1]
	if prev.tombstone() {
		if v.create != v.main || v.ver != 1 {
			return bad("first put after a delete does not start a generation")
		}
	} else if v.create != prev.create || v.ver != prev.ver+1 {
		return bad("create revision or version does not follow the previous put")
	}
	return nil
}
