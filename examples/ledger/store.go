package main

import (
	"fmt"
	"path/filepath"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// openStore opens replica id's write-ahead log under dir, on disk: a
// restarted replica recovers from it.
func openStore(dir string, id raft.NodeID) (replica.LogStore, error) {
	s, err := replica.OpenDiskStore(filepath.Join(dir, fmt.Sprintf("replica-%d", id)), quietLogger)
	if err != nil {
		return nil, fmt.Errorf("opening the log of replica %d: %w", id, err)
	}
	return s, nil
}
