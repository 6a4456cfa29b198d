package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/storage"
	"github.com/lockstep/lockstep/vfs"
)

// OpenDiskStore opens (creating it if needed) the durable log in dir, on
// the operating system's filesystem.
func OpenDiskStore(dir string, logger *slog.Logger) (LogStore, error) {
	return OpenStore(vfs.OS, dir, storage.Options{Logger: logger})
}

// OpenStore opens the durable log in dir on fsys with the given options.
func OpenStore(fsys vfs.FS, dir string, opts storage.Options) (LogStore, error) {
	s, err := storage.Open(fsys, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	return &diskStore{Store: s}, nil
}

// diskStore adapts storage.Store to LogStore.
//
// storage.Store makes every Save durable, with an fsync. A Save that only
// moves the commit index (mustSync false, no entries) is therefore not
// written at all, as LogStore allows: writing it would cost each member
// one more fsync per commit, in the raft loop, in front of the next
// append. The newest hard state is kept in pending and goes to disk with
// the next entries, vote or term, and when the store is closed.
type diskStore struct {
	*storage.Store
	mu      sync.Mutex     // guards the fields below
	pending raft.HardState // the newest hard state Save was given
	saved   raft.HardState // the newest one a Save wrote
	failed  bool           // a Save failed: Close writes nothing
}

func (d *diskStore) Save(hs raft.HardState, ents []raft.Entry, mustSync bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.pending
	if !hs.IsEmpty() {
		next = hs
	}
	if !mustSync && len(ents) == 0 {
		d.pending = next
		return nil
	}
	// A failed Save may leave the store writable (a batch over its
	// limits, a segment that could not be prepared): its hard state, whose
	// commit index may count the entries that were not written, must not
	// reach the disk later through Close.
	if err := d.Store.Save(next, ents); err != nil {
		d.failed = true
		return err
	}
	d.pending, d.saved = next, next
	return nil
}

// Close records the newest commit index, so that a member stopped cleanly
// resumes where it was, then closes the store. That write is a courtesy:
// nothing depends on it, so its error (most likely one an earlier write
// already returned, as a failed store refuses every write) is not Close's.
func (d *diskStore) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.failed && d.pending != d.saved {
		_ = d.Store.Save(d.pending, nil)
	}
	return d.Store.Close()
}

func (d *diskStore) CreateSnapshot(i raft.Index, cs raft.ConfState, data []byte) error {
	_, err := d.Store.CreateSnapshot(i, cs, data)
	return err
}

func (d *diskStore) Compact(i raft.Index) error {
	if err := d.Store.Compact(i); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	return nil
}

func (d *diskStore) Bootstrap(cs raft.ConfState) error { return d.Store.SetConfState(cs) }
