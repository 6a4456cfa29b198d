package replica

import (
	"errors"
	"fmt"
	"log/slog"

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
	return diskStore{s}, nil
}

// diskStore adapts storage.Store to LogStore.
type diskStore struct{ *storage.Store }

// Save always syncs: storage.Store makes every Save durable.
func (d diskStore) Save(hs raft.HardState, ents []raft.Entry, _ bool) error {
	return d.Store.Save(hs, ents)
}

func (d diskStore) CreateSnapshot(i raft.Index, cs raft.ConfState, data []byte) error {
	_, err := d.Store.CreateSnapshot(i, cs, data)
	return err
}

func (d diskStore) Compact(i raft.Index) error {
	if err := d.Store.Compact(i); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	return nil
}

func (d diskStore) Bootstrap(cs raft.ConfState) error { return d.Store.SetConfState(cs) }
