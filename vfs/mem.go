package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"sync"
)

// MemFS is an in-memory FS that can simulate a power loss; see the package
// documentation for the exact crash model. The zero value is not usable: call
// NewMemFS.
type MemFS struct {
	// mu guards everything below and the inodes reachable from it.
	mu   sync.Mutex
	rng  *rand.Rand
	dirs map[string]*memDir
	// inodes lists every inode that may be reachable from a current or
	// durable directory entry, in creation order, so that Crash visits them
	// in a fixed order.
	inodes []*inode
	// gen counts crashes; handles from an older generation are stale.
	gen uint64
	// ops counts the mutating operations that succeeded.
	ops int64
	// failAfter is the number of mutating operations still allowed to
	// succeed, or negative for no limit.
	failAfter int64
}

type memDir struct {
	entries map[string]*inode // as the running system sees them
	durable map[string]*inode // as of the last SyncDir
	pending []dirOp           // since the last SyncDir, oldest first
}

type dirOpKind uint8

const (
	opLink dirOpKind = iota
	opUnlink
	opRename
)

type dirOp struct {
	kind      dirOpKind
	name, old string
	ino       *inode
}

type inode struct {
	data    []byte     // as the running system sees it
	durable []byte     // as of the last Sync
	pending []mutation // since the last Sync, oldest first
	// pendingBytes is the total length of pending write payloads.
	pendingBytes int
}

// mutation is a write of data at off, or (truncate) a resize to size.
type mutation struct {
	truncate bool
	off      int64
	size     int64
	data     []byte
}

// maxMemFileSize bounds one MemFS file, so that a bad offset fails instead of
// exhausting memory.
const maxMemFileSize = 1 << 34

// NewMemFS returns an empty MemFS whose crash decisions are drawn from seed.
func NewMemFS(seed uint64) *MemFS {
	m := &MemFS{
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		dirs:      map[string]*memDir{},
		failAfter: -1,
	}
	m.dirs["/"] = newMemDir()
	m.dirs["."] = newMemDir()
	return m
}

func newMemDir() *memDir {
	return &memDir{entries: map[string]*inode{}, durable: map[string]*inode{}}
}

// CrashOptions selects how much unsynced state survives a Crash.
type CrashOptions struct {
	// KeepUnsynced keeps a random-length prefix of each file's unsynced
	// mutations and of each directory's unsynced entry operations. Without
	// it, everything unsynced is lost.
	KeepUnsynced bool
	// TearWrites, with KeepUnsynced, may keep a random-length prefix of the
	// first unsynced write that is otherwise lost.
	TearWrites bool
}

// Crash replaces the state by what survives a power loss, as described in the
// package documentation. Open handles become stale; FailAfter is cleared.
func (m *MemFS) Crash(opts CrashOptions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.dirs))
	for name := range m.dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d := m.dirs[name]
		entries := make(map[string]*inode, len(d.durable))
		for k, v := range d.durable {
			entries[k] = v
		}
		keep := 0
		if opts.KeepUnsynced {
			keep = m.rng.IntN(len(d.pending) + 1)
		}
		for _, op := range d.pending[:keep] {
			op.apply(entries)
		}
		d.entries = entries
		d.durable = make(map[string]*inode, len(entries))
		for k, v := range entries {
			d.durable[k] = v
		}
		d.pending = nil
	}
	reachable := map[*inode]bool{}
	for _, d := range m.dirs {
		for _, ino := range d.entries {
			reachable[ino] = true
		}
	}
	live := m.inodes[:0]
	for _, ino := range m.inodes {
		if !reachable[ino] {
			continue
		}
		live = append(live, ino)
		data := append([]byte(nil), ino.durable...)
		keep := 0
		if opts.KeepUnsynced {
			keep = m.rng.IntN(len(ino.pending) + 1)
		}
		for _, mu := range ino.pending[:keep] {
			data = mu.apply(data)
		}
		if opts.KeepUnsynced && opts.TearWrites && keep < len(ino.pending) {
			if mu := ino.pending[keep]; !mu.truncate && len(mu.data) > 1 {
				mu.data = mu.data[:m.rng.IntN(len(mu.data))]
				data = mu.apply(data)
			}
		}
		ino.data = data
		ino.durable = append([]byte(nil), data...)
		ino.pending = nil
		ino.pendingBytes = 0
	}
	clear(m.inodes[len(live):])
	m.inodes = live
	m.gen++
	m.failAfter = -1
}

// FailAfter lets the next n mutating operations (writes, syncs, truncates,
// creates, renames, removes, directory syncs) succeed and makes every later one
// fail with ErrInjected, without effect. A negative n removes the limit.
func (m *MemFS) FailAfter(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAfter = n
}

// Ops returns the number of mutating operations that have succeeded.
func (m *MemFS) Ops() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// FlipBit inverts bit number bit (counting from the first byte's least
// significant bit) of the named file, in its current and durable contents.
func (m *MemFS) FlipBit(name string, bit int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.lookupLocked(name)
	if err != nil {
		return err
	}
	i := bit / 8
	if bit < 0 || i >= int64(len(ino.data)) {
		return fmt.Errorf("vfs: flip bit %d of %s: past the end (%d bytes)", bit, name, len(ino.data))
	}
	mask := byte(1) << (bit % 8)
	ino.data[i] ^= mask
	if i < int64(len(ino.durable)) {
		ino.durable[i] ^= mask
	}
	return nil
}

// ReadFile returns a copy of the current contents of the named file (a test
// helper).
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), ino.data...), nil
}

// WriteFile replaces the named file's contents, durably, creating it and its
// durable directory entry if needed (a test helper to set up damaged disks).
func (m *MemFS) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dirLocked(name)
	if err != nil {
		return err
	}
	ino := d.entries[base]
	if ino == nil {
		ino = &inode{}
		m.inodes = append(m.inodes, ino)
		d.entries[base] = ino
		d.durable[base] = ino
	}
	ino.data = append([]byte(nil), data...)
	ino.durable = append([]byte(nil), data...)
	ino.pending, ino.pendingBytes = nil, 0
	return nil
}

func (op dirOp) apply(entries map[string]*inode) {
	switch op.kind {
	case opLink:
		entries[op.name] = op.ino
	case opUnlink:
		delete(entries, op.name)
	case opRename:
		delete(entries, op.old)
		entries[op.name] = op.ino
	}
}

func (mu mutation) apply(b []byte) []byte {
	if mu.truncate {
		return resize(b, mu.size)
	}
	end := mu.off + int64(len(mu.data))
	if end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[mu.off:], mu.data)
	return b
}

func resize(b []byte, size int64) []byte {
	if size <= int64(len(b)) {
		return b[:size]
	}
	if size <= int64(cap(b)) {
		old := len(b)
		b = b[:size]
		clear(b[old:])
		return b
	}
	nb := make([]byte, size, max(size, int64(cap(b))*5/4))
	copy(nb, b)
	return nb
}

// mutateLocked accounts for one mutating operation, failing it if the
// FailAfter budget is spent.
func (m *MemFS) mutateLocked() error {
	if m.failAfter == 0 {
		return ErrInjected
	}
	if m.failAfter > 0 {
		m.failAfter--
	}
	m.ops++
	return nil
}

func cleanPath(name string) string { return path.Clean(name) }

func (m *MemFS) dirLocked(name string) (*memDir, string, error) {
	name = cleanPath(name)
	dir, base := path.Dir(name), path.Base(name)
	d := m.dirs[dir]
	if d == nil {
		return nil, "", fmt.Errorf("vfs: %s: directory %s: %w", name, dir, fs.ErrNotExist)
	}
	if _, isDir := m.dirs[name]; isDir {
		return nil, "", fmt.Errorf("vfs: %s is a directory", name)
	}
	return d, base, nil
}

func (m *MemFS) lookupLocked(name string) (*inode, error) {
	d, base, err := m.dirLocked(name)
	if err != nil {
		return nil, err
	}
	ino := d.entries[base]
	if ino == nil {
		return nil, fmt.Errorf("vfs: %s: %w", name, fs.ErrNotExist)
	}
	return ino, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dirLocked(name)
	if err != nil {
		return nil, err
	}
	if err := m.mutateLocked(); err != nil {
		return nil, err
	}
	ino := d.entries[base]
	if ino != nil {
		ino.addLocked(mutation{truncate: true})
	} else {
		ino = &inode{}
		m.inodes = append(m.inodes, ino)
		d.entries[base] = ino
		d.pending = append(d.pending, dirOp{kind: opLink, name: base, ino: ino})
	}
	return &memFile{fs: m, ino: ino, name: name, gen: m.gen}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	return &memFile{fs: m, ino: ino, name: name, gen: m.gen}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dirLocked(name)
	if err != nil {
		return err
	}
	if d.entries[base] == nil {
		return fmt.Errorf("vfs: remove %s: %w", name, fs.ErrNotExist)
	}
	if err := m.mutateLocked(); err != nil {
		return err
	}
	delete(d.entries, base)
	d.pending = append(d.pending, dirOp{kind: opUnlink, name: base})
	return nil
}

// Rename implements FS. Within one directory it is one atomic entry
// operation; across directories it is an unlink in one and a link in the
// other, each durable with its own directory's SyncDir.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, obase, err := m.dirLocked(oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := m.dirLocked(newname)
	if err != nil {
		return err
	}
	ino := od.entries[obase]
	if ino == nil {
		return fmt.Errorf("vfs: rename %s: %w", oldname, fs.ErrNotExist)
	}
	if err := m.mutateLocked(); err != nil {
		return err
	}
	delete(od.entries, obase)
	nd.entries[nbase] = ino
	if od == nd {
		od.pending = append(od.pending, dirOp{kind: opRename, name: nbase, old: obase, ino: ino})
	} else {
		od.pending = append(od.pending, dirOp{kind: opUnlink, name: obase})
		nd.pending = append(nd.pending, dirOp{kind: opLink, name: nbase, ino: ino})
	}
	return nil
}

// List implements FS.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = cleanPath(dir)
	d := m.dirs[dir]
	if d == nil {
		return nil, fmt.Errorf("vfs: list %s: %w", dir, fs.ErrNotExist)
	}
	var names []string
	for name := range d.entries {
		names = append(names, name)
	}
	for sub := range m.dirs {
		if sub != dir && path.Dir(sub) == dir {
			names = append(names, path.Base(sub))
		}
	}
	sort.Strings(names)
	return names, nil
}

// MkdirAll implements FS. The directories are durable at once.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = cleanPath(dir)
	if m.dirs[dir] != nil {
		return nil
	}
	if err := m.mutateLocked(); err != nil {
		return err
	}
	for d := dir; m.dirs[d] == nil; d = path.Dir(d) {
		if parent := m.dirs[path.Dir(d)]; parent != nil && parent.entries[path.Base(d)] != nil {
			return fmt.Errorf("vfs: mkdir %s: %s is a file", dir, d)
		}
		m.dirs[d] = newMemDir()
	}
	return nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = cleanPath(dir)
	d := m.dirs[dir]
	if d == nil {
		return fmt.Errorf("vfs: sync dir %s: %w", dir, fs.ErrNotExist)
	}
	if err := m.mutateLocked(); err != nil {
		return err
	}
	d.durable = make(map[string]*inode, len(d.entries))
	for k, v := range d.entries {
		d.durable[k] = v
	}
	d.pending = nil
	m.sweepLocked()
	return nil
}

// sweepLocked forgets inodes no directory can lead to any more, so that a
// long simulation that removes files does not keep their contents forever.
func (m *MemFS) sweepLocked() {
	ref := map[*inode]bool{}
	for _, d := range m.dirs {
		for _, ino := range d.entries {
			ref[ino] = true
		}
		for _, ino := range d.durable {
			ref[ino] = true
		}
		for _, op := range d.pending {
			if op.ino != nil {
				ref[op.ino] = true
			}
		}
	}
	live := m.inodes[:0]
	for _, ino := range m.inodes {
		if ref[ino] {
			live = append(live, ino)
		}
	}
	clear(m.inodes[len(live):])
	m.inodes = live
}

func (ino *inode) addLocked(mu mutation) {
	ino.data = mu.apply(ino.data)
	ino.pending = append(ino.pending, mu)
	ino.pendingBytes += len(mu.data)
}

func (ino *inode) syncLocked() {
	if ino.pendingBytes > len(ino.data) {
		ino.durable = append(ino.durable[:0], ino.data...)
	} else {
		for _, mu := range ino.pending {
			ino.durable = mu.apply(ino.durable)
		}
	}
	clear(ino.pending)
	ino.pending = ino.pending[:0]
	ino.pendingBytes = 0
}

type memFile struct {
	fs   *MemFS
	ino  *inode
	name string
	gen  uint64
	// closed is guarded by fs.mu.
	closed bool
}

func (f *memFile) checkLocked() error {
	if f.closed {
		return fmt.Errorf("vfs: %s: %w", f.name, ErrClosed)
	}
	if f.gen != f.fs.gen {
		return fmt.Errorf("vfs: %s: %w", f.name, ErrStaleHandle)
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("vfs: read %s at negative offset %d", f.name, off)
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(); err != nil {
		return 0, err
	}
	if off < 0 || off+int64(len(p)) > maxMemFileSize {
		return 0, fmt.Errorf("vfs: write %s at offset %d: out of range", f.name, off)
	}
	if err := f.fs.mutateLocked(); err != nil {
		return 0, err
	}
	f.ino.addLocked(mutation{off: off, data: append([]byte(nil), p...)})
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(); err != nil {
		return err
	}
	if err := f.fs.mutateLocked(); err != nil {
		return err
	}
	f.ino.syncLocked()
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(); err != nil {
		return err
	}
	if size < 0 || size > maxMemFileSize {
		return fmt.Errorf("vfs: truncate %s to %d bytes: out of range", f.name, size)
	}
	if err := f.fs.mutateLocked(); err != nil {
		return err
	}
	f.ino.addLocked(mutation{truncate: true, size: size})
	return nil
}

func (f *memFile) Preallocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(); err != nil {
		return err
	}
	if size > maxMemFileSize {
		return fmt.Errorf("vfs: preallocate %s to %d bytes: out of range", f.name, size)
	}
	if size <= int64(len(f.ino.data)) {
		return nil
	}
	if err := f.fs.mutateLocked(); err != nil {
		return err
	}
	f.ino.addLocked(mutation{truncate: true, size: size})
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(); err != nil {
		return 0, err
	}
	return int64(len(f.ino.data)), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fmt.Errorf("vfs: %s: %w", f.name, ErrClosed)
	}
	f.closed = true
	return nil
}

func (f *memFile) Name() string { return f.name }
