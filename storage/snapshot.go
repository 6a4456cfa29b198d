package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

// A snapshot file is a 32-byte header, the encoded raft.SnapshotMeta, and
// the data:
//
//	[0:8)   magic "lksnap\x00\x01"
//	[8:12)  metadata length, little-endian
//	[12:20) data length
//	[20:24) CRC32C of the metadata
//	[24:28) CRC32C of the data
//	[28:32) CRC32C of bytes [0:28)
//
// It is written to NAME.tmp, synced, renamed to NAME and the directory
// synced, so NAME either is complete or does not exist.
const snapHeaderSize = 32

var snapMagic = [8]byte{'l', 'k', 's', 'n', 'a', 'p', 0, 1}

// maxSnapMetaBytes bounds the encoded metadata (mostly the ConfState).
const maxSnapMetaBytes = 16 << 20

type snapInfo struct {
	meta raft.SnapshotMeta
	path string
}

func snapshotName(i raft.Index) string { return fmt.Sprintf("%016x.snap", uint64(i)) }

func encodeSnapHeader(meta, data []byte) []byte {
	h := make([]byte, snapHeaderSize, snapHeaderSize+len(meta))
	copy(h, snapMagic[:])
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(meta)))
	binary.LittleEndian.PutUint64(h[12:20], uint64(len(data)))
	binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(meta, castagnoli))
	binary.LittleEndian.PutUint32(h[24:28], crc32.Checksum(data, castagnoli))
	binary.LittleEndian.PutUint32(h[28:32], crc32.Checksum(h[:28], castagnoli))
	return append(h, meta...)
}

// readSnapshotFile validates the snapshot at p and returns its metadata and,
// if withData, its data. Without withData the data is checksummed in
// bounded chunks.
func (s *Store) readSnapshotFile(p string, withData bool) (raft.SnapshotMeta, []byte, error) {
	var meta raft.SnapshotMeta
	f, err := s.fs.Open(p)
	if err != nil {
		return meta, nil, fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return meta, nil, fmt.Errorf("storage: size of %s: %w", p, err)
	}
	if size < snapHeaderSize {
		return meta, nil, corruptf(p, 0, "truncated snapshot header (%d bytes)", size)
	}
	h := make([]byte, snapHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return meta, nil, fmt.Errorf("storage: read %s: %w", p, err)
	}
	if !bytes.Equal(h[:8], snapMagic[:]) {
		return meta, nil, corruptf(p, 0, "bad snapshot magic %q", h[:8])
	}
	if binary.LittleEndian.Uint32(h[28:32]) != crc32.Checksum(h[:28], castagnoli) {
		return meta, nil, corruptf(p, 28, "snapshot header crc mismatch")
	}
	metaLen := int64(binary.LittleEndian.Uint32(h[8:12]))
	dataLen := binary.LittleEndian.Uint64(h[12:20])
	if metaLen > maxSnapMetaBytes {
		return meta, nil, corruptf(p, 8, "snapshot metadata length %d exceeds the limit %d", metaLen, maxSnapMetaBytes)
	}
	if dataLen > uint64(s.opts.MaxSnapshotBytes) {
		return meta, nil, corruptf(p, 12, "snapshot data length %d exceeds the limit %d", dataLen, s.opts.MaxSnapshotBytes)
	}
	if want := snapHeaderSize + metaLen + int64(dataLen); size != want {
		return meta, nil, corruptf(p, min(size, want), "snapshot file is %d bytes, its header says %d", size, want)
	}
	mb := make([]byte, metaLen)
	if _, err := f.ReadAt(mb, snapHeaderSize); err != nil {
		return meta, nil, fmt.Errorf("storage: read %s: %w", p, err)
	}
	if binary.LittleEndian.Uint32(h[20:24]) != crc32.Checksum(mb, castagnoli) {
		return meta, nil, corruptf(p, snapHeaderSize, "snapshot metadata crc mismatch")
	}
	meta, rest, err := raft.DecodeSnapshotMeta(mb)
	if err != nil || len(rest) != 0 {
		return meta, nil, corruptf(p, snapHeaderSize, "undecodable snapshot metadata (%v, %d trailing bytes)", err, len(rest))
	}
	off := snapHeaderSize + metaLen
	wantCRC := binary.LittleEndian.Uint32(h[24:28])
	if withData {
		data := make([]byte, dataLen)
		if _, err := f.ReadAt(data, off); err != nil && !(err == io.EOF && dataLen == 0) {
			return meta, nil, fmt.Errorf("storage: read %s: %w", p, err)
		}
		if crc32.Checksum(data, castagnoli) != wantCRC {
			return meta, nil, corruptf(p, off, "snapshot data crc mismatch")
		}
		return meta, data, nil
	}
	buf := make([]byte, min(int64(dataLen), readWindow))
	crc := uint32(0)
	for pos := off; pos < size; pos += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), size-pos)]
		if _, err := f.ReadAt(b, pos); err != nil {
			return meta, nil, fmt.Errorf("storage: read %s: %w", p, err)
		}
		crc = crc32.Update(crc, castagnoli, b)
	}
	if crc != wantCRC {
		return meta, nil, corruptf(p, off, "snapshot data crc mismatch")
	}
	return meta, nil, nil
}

// loadSnapshots validates the snapshot files, newest first, and keeps the
// valid ones; a damaged newer one is logged and passed over.
func (s *Store) loadSnapshots(idxs []uint64) error {
	sort.Slice(idxs, func(a, b int) bool { return idxs[a] > idxs[b] })
	for _, i := range idxs {
		p := s.path(snapshotName(raft.Index(i)))
		meta, _, err := s.readSnapshotFile(p, false)
		if err == nil && uint64(meta.Index) != i {
			err = corruptf(p, snapHeaderSize, "snapshot file name says index %d, its metadata %d", i, meta.Index)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return err
			}
			s.log.Warn("storage: skipping damaged snapshot, falling back to an older one", "file", p, "err", err)
			s.report.SkippedSnapshots = append(s.report.SkippedSnapshots, p)
			continue
		}
		s.snaps = append(s.snaps, snapInfo{meta: meta, path: p})
	}
	return nil
}

// syncChunk is how much of a large file (a snapshot) is written between
// two syncs.
const syncChunk = 1 << 20

// writeSynced writes data at off a chunk at a time, syncing after each, and
// so ends durable. Written whole and synced once, a file of many megabytes
// becomes one long flush that the log's fsyncs, on the same disk, queue
// behind: every write waits for it. A chunk at a time, they wait for one
// chunk at most.
func writeSynced(f vfs.File, data []byte, off int64) error {
	for len(data) > 0 {
		n := min(len(data), syncChunk)
		if _, err := f.WriteAt(data[:n], off); err != nil {
			return err
		}
		data, off = data[n:], off+int64(n)
		if len(data) > 0 {
			if err := f.Sync(); err != nil {
				return err
			}
		}
	}
	return f.Sync()
}

// writeSnapshotFile makes a snapshot file durable: temp file, sync,
// rename, directory sync. It touches no writer state (only fs, dir and
// opts), so that CreateSnapshot can run it without writeMu; snapMu is
// held. A failed rename or directory sync leaves the directory in an
// unknown state: fatal says so, and the caller must fail the store.
func (s *Store) writeSnapshotFile(meta raft.SnapshotMeta, data []byte) (info snapInfo, fatal bool, err error) {
	if int64(len(data)) > s.opts.MaxSnapshotBytes {
		return snapInfo{}, false, fmt.Errorf("storage: snapshot data of %d bytes exceeds the limit of %d bytes", len(data), s.opts.MaxSnapshotBytes)
	}
	mb := raft.AppendSnapshotMeta(nil, meta)
	if len(mb) > maxSnapMetaBytes {
		return snapInfo{}, false, fmt.Errorf("storage: snapshot metadata of %d bytes exceeds the limit of %d bytes", len(mb), maxSnapMetaBytes)
	}
	p := s.path(snapshotName(meta.Index))
	tmp := p + ".tmp"
	f, err := s.fs.Create(tmp)
	if err != nil {
		return snapInfo{}, false, fmt.Errorf("storage: %w", err)
	}
	head := encodeSnapHeader(mb, data)
	err = func() error {
		if _, err := f.WriteAt(head, 0); err != nil {
			return err
		}
		return writeSynced(f, data, int64(len(head)))
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.fs.Remove(tmp)
		return snapInfo{}, false, fmt.Errorf("storage: write snapshot %s: %w", tmp, err)
	}
	if err := s.fs.Rename(tmp, p); err != nil {
		return snapInfo{}, true, fmt.Errorf("storage: %w", err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return snapInfo{}, true, fmt.Errorf("storage: %w", err)
	}
	return snapInfo{meta: raft.SnapshotMeta{Index: meta.Index, Term: meta.Term, ConfState: meta.ConfState.Clone()}, path: p}, false, nil
}

// addSnapshotLocked publishes a new newest snapshot and prunes old ones:
// the newest KeepSnapshots valid ones stay, older files (damaged or not) go.
// The new snapshot is durable and in use before pruning starts, so a file
// that cannot be removed is logged, not reported as a failure of the
// snapshot; the next snapshot's pruning tries again.
func (s *Store) addSnapshotLocked(info snapInfo) {
	s.mu.Lock()
	s.snaps = append([]snapInfo{info}, s.snaps...)
	if len(s.snaps) > s.opts.KeepSnapshots {
		s.snaps = s.snaps[:s.opts.KeepSnapshots:s.opts.KeepSnapshots]
	}
	oldest := s.snaps[len(s.snaps)-1].meta.Index
	s.mu.Unlock()
	names, err := s.fs.List(s.dir)
	if err != nil {
		s.opts.Logger.Warn("storage: listing old snapshots to prune", "dir", s.dir, "err", err)
		return
	}
	for _, name := range names {
		if i, ok := parseSeq(name, ".snap"); ok && raft.Index(i) < oldest {
			if err := s.fs.Remove(s.path(name)); err != nil {
				s.opts.Logger.Warn("storage: removing an old snapshot", "file", s.path(name), "err", err)
			}
		}
	}
}

// CreateSnapshot durably records a snapshot of the state machine at index i
// (which must be held: applied, hence in the log) with configuration cs.
// Like raft.MemoryStorage it does not compact the log; call Compact.
//
// The snapshot file is written and synced without holding up Save or
// Compact: a large state takes long to write, and a raft loop waiting for
// it would miss its heartbeats. ApplySnapshot, which replaces the log, and
// Close wait for it instead (snapMu). If a write fails meanwhile, the
// snapshot is not published and its file is removed (without a directory
// sync: a file left by a crash is a valid snapshot of committed state).
func (s *Store) CreateSnapshot(i raft.Index, cs raft.ConfState, data []byte) (raft.Snapshot, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.writeMu.Lock()
	meta, err := s.snapshotMetaLocked(i, cs)
	s.writeMu.Unlock()
	if err != nil {
		return raft.Snapshot{}, err
	}
	info, fatal, err := s.writeSnapshotFile(meta, data)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if fatal {
		return raft.Snapshot{}, s.fail(err)
	}
	if err != nil {
		return raft.Snapshot{}, err
	}
	if err := s.writableLocked(); err != nil {
		if rerr := s.fs.Remove(info.path); rerr != nil {
			s.opts.Logger.Warn("storage: removing a snapshot that was not published", "file", info.path, "err", rerr)
		}
		return raft.Snapshot{}, err
	}
	s.addSnapshotLocked(info)
	return raft.Snapshot{Meta: meta, Data: data}, nil
}

// snapshotMetaLocked checks that a snapshot at i may be taken and returns
// its metadata. writeMu is held.
func (s *Store) snapshotMetaLocked(i raft.Index, cs raft.ConfState) (raft.SnapshotMeta, error) {
	if err := s.writableLocked(); err != nil {
		return raft.SnapshotMeta{}, err
	}
	if i <= s.snapIndexLocked() {
		return raft.SnapshotMeta{}, raft.ErrSnapshotOutOfDate
	}
	if i > s.idx.last {
		return raft.SnapshotMeta{}, fmt.Errorf("storage: snapshot index %d is past the last index %d", i, s.idx.last)
	}
	if i < s.idx.offset {
		return raft.SnapshotMeta{}, raft.ErrCompacted
	}
	return raft.SnapshotMeta{Index: i, Term: s.idx.term(i), ConfState: cs.Clone()}, nil
}

// ApplySnapshot durably replaces the log with snap (received from a leader):
// every entry is dropped and the log continues at snap.Meta.Index+1.
//
// Ordering: the snapshot file is durable before the log records that it
// replaced the log; a crash in between leaves a snapshot the log does not
// extend, which Open resolves by starting the log at the snapshot.
func (s *Store) ApplySnapshot(snap raft.Snapshot) error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	if snap.Meta.Index == 0 {
		return errors.New("storage: apply snapshot: empty snapshot")
	}
	if snap.Meta.Index <= s.snapIndexLocked() {
		return raft.ErrSnapshotOutOfDate
	}
	info, fatal, err := s.writeSnapshotFile(snap.Meta, snap.Data)
	if fatal {
		return s.fail(err)
	}
	if err != nil {
		return err
	}
	if err := s.writeRecordLocked(recReset, appendIndexTerm(nil, snap.Meta.Index, snap.Meta.Term)); err != nil {
		return err
	}
	s.mu.Lock()
	s.idx.reset(snap.Meta.Index, snap.Meta.Term)
	s.cache.clear()
	s.mu.Unlock()
	s.addSnapshotLocked(info)
	return s.removeSegmentsLocked(s.tail.seq)
}
