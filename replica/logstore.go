package replica

import (
	"sync"

	"github.com/lockstep/lockstep/raft"
)

// LogStore is the durable log the runtime writes to and raft reads from.
// Package storage provides the one on disk; NewMemoryLogStore one for tests.
//
// Concurrency: all methods may be called from several goroutines at once
// (the raft loop saves while the apply loop snapshots, and raft reads).
type LogStore interface {
	raft.Storage
	// Save appends ents, replacing any stored suffix from ents[0].Index on,
	// then records hs (if not empty). When sync is set, everything is
	// durable when Save returns. When it is not (raft's MustSync: only the
	// commit index moved), hs may be recorded later, with a later Save or
	// at Close, or lost in a crash; raft learns the commit index again.
	Save(hs raft.HardState, ents []raft.Entry, sync bool) error
	// ApplySnapshot durably replaces the log with a snapshot received from
	// the leader.
	ApplySnapshot(snap raft.Snapshot) error
	// CreateSnapshot durably records a snapshot the state machine took at
	// index (which is applied, hence in the log).
	CreateSnapshot(index raft.Index, cs raft.ConfState, data []byte) error
	// Compact drops the entries before index, which a snapshot covers.
	Compact(index raft.Index) error
	// Bootstrap records the initial membership of a new, empty log.
	Bootstrap(cs raft.ConfState) error
	Close() error
}

// memoryLogStore is a LogStore in memory, for tests: raft.MemoryStorage
// behind a lock.
type memoryLogStore struct {
	mu sync.Mutex // guards ms
	ms *raft.MemoryStorage
}

// NewMemoryLogStore returns a LogStore that keeps everything in memory. It
// survives a replica's Stop (pass it to the next Start to model a restart)
// but not the process.
func NewMemoryLogStore() LogStore { return &memoryLogStore{ms: raft.NewMemoryStorage()} }

func (m *memoryLogStore) InitialState() (raft.HardState, raft.ConfState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ms.InitialState()
}

func (m *memoryLogStore) Entries(lo, hi raft.Index, maxBytes uint64) ([]raft.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ents, err := m.ms.Entries(lo, hi, maxBytes)
	// The underlying array may be rewritten by a later Append.
	return append([]raft.Entry(nil), ents...), err
}

func (m *memoryLogStore) Term(i raft.Index) (raft.Term, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ms.Term(i)
}

func (m *memoryLogStore) FirstIndex() (raft.Index, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ms.FirstIndex()
}

func (m *memoryLogStore) LastIndex() (raft.Index, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ms.LastIndex()
}

func (m *memoryLogStore) Snapshot() (raft.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ms.Snapshot()
}

func (m *memoryLogStore) Save(hs raft.HardState, ents []raft.Entry, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ms.Append(ents); err != nil {
		return err
	}
	if !hs.IsEmpty() {
		m.ms.SetHardState(hs)
	}
	return nil
}

func (m *memoryLogStore) ApplySnapshot(snap raft.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ms.ApplySnapshot(snap)
}

func (m *memoryLogStore) CreateSnapshot(index raft.Index, cs raft.ConfState, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.ms.CreateSnapshot(index, cs, data)
	return err
}

func (m *memoryLogStore) Compact(index raft.Index) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ms.Compact(index); err != nil && err != raft.ErrCompacted {
		return err
	}
	return nil
}

func (m *memoryLogStore) Bootstrap(cs raft.ConfState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ms.SetConfState(cs)
	return nil
}

func (m *memoryLogStore) Close() error { return nil }
