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
// moves the commit index (sync false, no entries) is therefore not written
// at all: raft does not need the commit index to survive a crash (a
// restarted member learns it again from the leader, and a new leader
// re-establishes it with its first commit), and writing it would cost each
// member one more fsync per commit, in the raft loop, in front of the next
// append. The newest hard state is kept in pending and goes to disk with
// the next entries, vote or term, and when the store is closed.
type diskStore struct {
	*storage.Store
	mu      sync.Mutex     // guards pending
	pending raft.HardState // the newest hard state Save was given
}

func (d *diskStore) Save(hs raft.HardState, ents []raft.Entry, mustSync bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !hs.IsEmpty() {
		d.pending = hs
	}
	if !mustSync && len(ents) == 0 {
		return nil
	}
	return d.Store.Save(d.pending, ents)
}

// Close records the newest commit index, so that a member stopped cleanly
// resumes where it was, then closes the store.
func (d *diskStore) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if !d.pending.IsEmpty() {
		err = d.Store.Save(d.pending, nil)
		if errors.Is(err, storage.ErrClosed) {
			err = nil
		}
	}
	return errors.Join(err, d.Store.Close())
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
