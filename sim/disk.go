package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/lockstep/lockstep/raft"
)

// Disk is a replica's stable storage as the simulated runtime drives it:
// the read side raft needs, plus staged writes that become durable only at
// Sync, and a crash that keeps only what was durable. Two implementations:
// the memory model below, and package storage over vfs.MemFS (storeDisk,
// storedisk.go).
type Disk interface {
	raft.Storage
	// WriteSnapshot, WriteEntries and WriteHardState stage the writes of
	// one Ready, in this order (raft/doc.go, step 2). WriteEntries replaces
	// any stored suffix from the first entry's index on.
	WriteSnapshot(s raft.Snapshot) error
	WriteEntries(ents []raft.Entry) error
	WriteHardState(hs raft.HardState) error
	// Sync makes every staged write durable and visible through
	// raft.Storage.
	Sync() error
	// SaveSnapshot durably records a state machine image taken at applied
	// index i and drops the log before compact (compact <= i).
	SaveSnapshot(i raft.Index, cs raft.ConfState, data []byte, compact raft.Index) error
	// Crash simulates power loss and returns the disk as a restarted
	// process finds it: unsynced writes are lost, except that a random
	// prefix of them (in write order) may have reached the platter.
	Crash(rng *rand.Rand) (Disk, error)
	// Log returns the durable entries in [FirstIndex, LastIndex], for the
	// checker.
	Log() []raft.Entry
}

// memDisk is the memory model of a disk: a raft.MemoryStorage holding what
// is durable, plus the writes staged since the last Sync.
type memDisk struct {
	ms     *raft.MemoryStorage
	staged []stagedWrite
	// lieTail is a test-only fault: on a crash the disk also forgets this
	// many of its last synced entries, i.e. it acknowledged appends it did
	// not keep.
	lieTail int
}

type stagedWrite struct {
	snap *raft.Snapshot
	ents []raft.Entry
	hs   *raft.HardState
}

func newMemDisk(cs raft.ConfState) *memDisk {
	ms := raft.NewMemoryStorage()
	ms.SetConfState(cs)
	return &memDisk{ms: ms}
}

func (d *memDisk) InitialState() (raft.HardState, raft.ConfState, error) { return d.ms.InitialState() }
func (d *memDisk) Entries(lo, hi raft.Index, maxBytes uint64) ([]raft.Entry, error) {
	return d.ms.Entries(lo, hi, maxBytes)
}
func (d *memDisk) Term(i raft.Index) (raft.Term, error) { return d.ms.Term(i) }
func (d *memDisk) FirstIndex() (raft.Index, error)      { return d.ms.FirstIndex() }
func (d *memDisk) LastIndex() (raft.Index, error)       { return d.ms.LastIndex() }
func (d *memDisk) Snapshot() (raft.Snapshot, error)     { return d.ms.Snapshot() }

func (d *memDisk) WriteSnapshot(s raft.Snapshot) error {
	d.staged = append(d.staged, stagedWrite{snap: &s})
	return nil
}

func (d *memDisk) WriteEntries(ents []raft.Entry) error {
	if len(ents) > 0 {
		// Copy: raft may reuse the slice's array after Advance.
		d.staged = append(d.staged, stagedWrite{ents: append([]raft.Entry(nil), ents...)})
	}
	return nil
}

func (d *memDisk) WriteHardState(hs raft.HardState) error {
	d.staged = append(d.staged, stagedWrite{hs: &hs})
	return nil
}

func (d *memDisk) Sync() error {
	err := d.apply(d.staged)
	d.staged = d.staged[:0]
	return err
}

func (d *memDisk) apply(ws []stagedWrite) error {
	for _, w := range ws {
		switch {
		case w.snap != nil:
			if err := d.ms.ApplySnapshot(*w.snap); err != nil {
				return fmt.Errorf("sim: disk: %w", err)
			}
		case w.hs != nil:
			d.ms.SetHardState(*w.hs)
		default:
			if err := d.ms.Append(w.ents); err != nil {
				return fmt.Errorf("sim: disk: %w", err)
			}
		}
	}
	return nil
}

func (d *memDisk) SaveSnapshot(i raft.Index, cs raft.ConfState, data []byte, compact raft.Index) error {
	if _, err := d.ms.CreateSnapshot(i, cs, data); err != nil {
		return fmt.Errorf("sim: disk: %w", err)
	}
	if first, _ := d.ms.FirstIndex(); compact >= first {
		if err := d.ms.Compact(compact); err != nil {
			return fmt.Errorf("sim: disk: %w", err)
		}
	}
	return nil
}

func (d *memDisk) Crash(rng *rand.Rand) (Disk, error) {
	keep := 0
	if len(d.staged) > 0 {
		keep = rng.IntN(len(d.staged) + 1)
	}
	err := d.apply(d.staged[:keep])
	d.staged = nil
	if err != nil {
		return nil, err
	}
	if d.lieTail > 0 {
		d.forgetTail(d.lieTail)
	}
	return d, nil
}

// forgetTail rebuilds the storage without its last n entries (never
// reaching into the snapshot), with the commit index clamped so the result
// is self-consistent.
func (d *memDisk) forgetTail(n int) {
	snap, _ := d.ms.Snapshot()
	hs := d.ms.HardState()
	ents := d.Log()
	if n > len(ents) {
		n = len(ents)
	}
	ents = ents[:len(ents)-n]
	_, conf, _ := d.ms.InitialState()
	ms := raft.NewMemoryStorage()
	if !snap.IsEmpty() {
		_ = ms.ApplySnapshot(snap)
	} else {
		ms.SetConfState(conf)
	}
	_ = ms.Append(ents)
	last, _ := ms.LastIndex()
	hs.Commit = min(hs.Commit, last)
	ms.SetHardState(hs)
	d.ms = ms
}

func (d *memDisk) Log() []raft.Entry {
	first, _ := d.ms.FirstIndex()
	last, _ := d.ms.LastIndex()
	ents, err := d.ms.Entries(first, last+1, 0)
	if err != nil {
		return nil
	}
	return ents
}
