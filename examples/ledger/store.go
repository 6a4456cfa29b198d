package main

import (
	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// openStore opens replica id's log. Until the on-disk store is wired in,
// the example keeps it in memory (it survives the replica's restart, not
// the process's).
func openStore(dir string, id raft.NodeID) (replica.LogStore, error) {
	_ = dir
	_ = id
	return replica.NewMemoryLogStore(), nil
}
