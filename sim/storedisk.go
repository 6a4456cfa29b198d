package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/storage"
	"github.com/lockstep/lockstep/vfs"
)

// storeDisk is a Disk made of the real storage package over an in-memory
// filesystem with crash semantics: the code a production replica runs,
// crashed by the simulator.
//
// Staged writes reach the store only at Sync (one ApplySnapshot, then one
// Save: entries before the hard state, one fsync). A crash while a Ready is
// being persisted may interrupt that write part way: the filesystem lets
// the first few operations through and fails the rest, then loses unsynced
// data, keeping a random prefix of it and possibly tearing the last write.
// The store is then reopened from what the filesystem kept, as a restarted
// process would.
type storeDisk struct {
	fs   *vfs.MemFS
	st   *storage.Store
	tear bool
	// Staged writes of the Ready being persisted.
	snap  *raft.Snapshot
	ents  []raft.Entry
	hs    raft.HardState
	dirty bool
	// tornNow: the last reopening cut off a damaged tail.
	tornNow bool
}

const storeDir = "/data"

func storeOptions() storage.Options {
	return storage.Options{
		SegmentBytes: 64 << 10,
		ZeroFill:     storage.ZeroFillOff,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newStoreDisk(seed uint64, cs raft.ConfState, tear bool) (*storeDisk, error) {
	fs := vfs.NewMemFS(seed)
	st, err := storage.Open(fs, storeDir, storeOptions())
	if err != nil {
		return nil, err
	}
	if err := st.SetConfState(cs); err != nil {
		return nil, err
	}
	return &storeDisk{fs: fs, st: st, tear: tear}, nil
}

func (d *storeDisk) InitialState() (raft.HardState, raft.ConfState, error) {
	return d.st.InitialState()
}
func (d *storeDisk) Entries(lo, hi raft.Index, maxBytes uint64) ([]raft.Entry, error) {
	return d.st.Entries(lo, hi, maxBytes)
}
func (d *storeDisk) Term(i raft.Index) (raft.Term, error) { return d.st.Term(i) }
func (d *storeDisk) FirstIndex() (raft.Index, error)      { return d.st.FirstIndex() }
func (d *storeDisk) LastIndex() (raft.Index, error)       { return d.st.LastIndex() }
func (d *storeDisk) Snapshot() (raft.Snapshot, error)     { return d.st.Snapshot() }

func (d *storeDisk) WriteSnapshot(s raft.Snapshot) error {
	d.snap, d.dirty = &s, true
	return nil
}

func (d *storeDisk) WriteEntries(ents []raft.Entry) error {
	if len(ents) > 0 {
		d.ents, d.dirty = append([]raft.Entry(nil), ents...), true
	}
	return nil
}

func (d *storeDisk) WriteHardState(hs raft.HardState) error {
	d.hs, d.dirty = hs, true
	return nil
}

func (d *storeDisk) Sync() error {
	err := d.write()
	d.snap, d.ents, d.hs, d.dirty = nil, nil, raft.HardState{}, false
	return err
}

func (d *storeDisk) write() error {
	if d.snap != nil {
		if err := d.st.ApplySnapshot(*d.snap); err != nil {
			return fmt.Errorf("sim: store: %w", err)
		}
	}
	if len(d.ents) > 0 || !d.hs.IsEmpty() {
		if err := d.st.Save(d.hs, d.ents); err != nil {
			return fmt.Errorf("sim: store: %w", err)
		}
	}
	return nil
}

func (d *storeDisk) SaveSnapshot(i raft.Index, cs raft.ConfState, data []byte, compact raft.Index) error {
	if _, err := d.st.CreateSnapshot(i, cs, data); err != nil {
		return fmt.Errorf("sim: store: %w", err)
	}
	// Compacting to where the log already starts is refused with
	// ErrCompacted and harmless; anything else is a store failure.
	if err := d.st.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("sim: store: compact: %w", err)
	}
	return nil
}

func (d *storeDisk) Crash(rng *rand.Rand) (Disk, error) {
	if d.dirty && rng.IntN(2) == 0 {
		// Power fails in the middle of persisting the Ready.
		d.fs.FailAfter(int64(rng.IntN(4)))
		_ = d.write()
	}
	d.snap, d.ents, d.hs, d.dirty = nil, nil, raft.HardState{}, false
	d.fs.Crash(vfs.CrashOptions{KeepUnsynced: true, TearWrites: d.tear})
	st, err := storage.Open(d.fs, storeDir, storeOptions())
	if err != nil {
		return nil, fmt.Errorf("sim: reopening the store after a crash: %w", err)
	}
	d.tornNow = st.Recovery().TornBytes > 0
	d.st = st
	return d, nil
}

func (d *storeDisk) Log() []raft.Entry {
	first, _ := d.st.FirstIndex()
	last, _ := d.st.LastIndex()
	if last < first {
		return nil
	}
	ents, err := d.st.Entries(first, last+1, 0)
	if err != nil {
		return nil
	}
	return ents
}
