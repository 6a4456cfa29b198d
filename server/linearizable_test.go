package server

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockstep/lockstep/server/servertest"
)

// TestLinearizableUnderRestarts drives the real server with etcd's client,
// the way a Jepsen test would: clients pinned to each member put, get
// (linearizable), compare-and-set and delete a few keys while members, most
// often the leader, are stopped and restarted from their disks again and
// again. The history must be linearizable (servertest.LinHistory.Check).
//
// It runs with reads confirmed by heartbeat rounds and with lease reads.
// LOCKSTEP_LINEARIZABLE_SECONDS makes each run longer (default 4).
func TestLinearizableUnderRestarts(t *testing.T) {
	forReadModes(t, linearizableUnderRestarts)
}

// forReadModes runs a multi-second linearizability test once with reads
// confirmed by heartbeat rounds and once with lease reads (skipped with
// -short).
func forReadModes(t *testing.T, run func(t *testing.T, leaseReads bool)) {
	if testing.Short() {
		t.Skip("-short: a multi-second run under faults")
	}
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease-reads=%v", lease), func(t *testing.T) { run(t, lease) })
	}
}

// pinnedClients returns n clients, client i talking to member i%len only.
func (c *testCluster) pinnedClients(n int) []*clientv3.Client {
	var clis []*clientv3.Client
	for i := 0; i < n; i++ {
		clis = append(clis, c.client(i%len(c.members)))
	}
	return clis
}

func linearizableUnderRestarts(t *testing.T, leaseReads bool) {
	run := servertest.LinDuration(t, 4*time.Second)
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.LeaseReads = leaseReads
	})
	c.waitLeader()
	// Every 0.7 s a member is stopped for 0.3 s and restarted from its
	// disk; a follower comes back behind and must catch up before its
	// reads may answer.
	servertest.RunLin(t, c.pinnedClients(6), run, servertest.LinNemesis{
		Members: 3, Leader: c.waitLeader, Stop: c.stop, Start: c.start,
		Every: 400 * time.Millisecond, Down: 300 * time.Millisecond, Seed: 7,
	})
}

// TestLinearizableUnderRestartsWithFrequentSnapshots is
// TestLinearizableUnderRestarts with a snapshot every 50 entries: the
// snapshot writer stores images while members apply, are stopped in the
// middle of a store and restart from a snapshot and the log behind it.
func TestLinearizableUnderRestartsWithFrequentSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a multi-second run under faults")
	}
	run := servertest.LinDuration(t, 4*time.Second)
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.SnapshotEntries = 50
	})
	c.waitLeader()
	servertest.RunLin(t, c.pinnedClients(6), run, servertest.LinNemesis{
		Members: 3, Leader: c.waitLeader, Stop: c.stop, Start: c.start,
		Every: 400 * time.Millisecond, Down: 300 * time.Millisecond, Seed: 11,
	})
	for i, dir := range c.dirs {
		var snaps int
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".snap") {
				snaps++
			}
			return nil
		})
		if snaps == 0 {
			t.Fatalf("member %d has no snapshot on disk: the test exercised none", i)
		}
	}
}

// TestLinearizableUnderPartitions is TestLinearizableUnderRestarts with
// network partitions instead of restarts: every member reaches every other
// through a proxy of its own for that link, and the nemesis cuts a member
// (the leader two times in three) off from the others for 0.8 s, in both
// directions, while its clients keep talking to it: long enough for the
// others to elect a leader when it led.
func TestLinearizableUnderPartitions(t *testing.T) {
	forReadModes(t, linearizableUnderPartitions)
}

func linearizableUnderPartitions(t *testing.T, leaseReads bool) {
	run := servertest.LinDuration(t, 4*time.Second)
	links := map[[2]string]*servertest.Link{}
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.LeaseReads = leaseReads
		// This member dials each other one through the proxy of that link.
		cfg.Members = slices.Clone(cfg.Members)
		for j, m := range cfg.Members {
			if m.Name == cfg.Name {
				continue
			}
			key := [2]string{cfg.Name, m.Name}
			if links[key] == nil {
				links[key] = servertest.NewLink(t, m.PeerAddr())
			}
			cfg.Members[j].PeerURL = "http://" + links[key].Addr()
		}
	})
	c.waitLeader()
	setCut := func(i int, cut bool) {
		for key, l := range links {
			if i < 0 || key[0] == c.members[i].Name || key[1] == c.members[i].Name {
				l.SetCut(cut)
			}
		}
	}
	servertest.RunLin(t, c.pinnedClients(6), run, servertest.LinNemesis{
		Members: 3, Leader: c.waitLeader,
		Stop:  func(i int) { setCut(i, true) },
		Start: func(int) { setCut(-1, false) },
		Every: 400 * time.Millisecond, Down: 800 * time.Millisecond, Seed: 13,
	})
}
