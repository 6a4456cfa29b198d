package server

import (
	"fmt"
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
	if testing.Short() {
		t.Skip("-short: a multi-second run with restarts")
	}
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease-reads=%v", lease), func(t *testing.T) {
			linearizableUnderRestarts(t, lease)
		})
	}
}

func linearizableUnderRestarts(t *testing.T, leaseReads bool) {
	run := servertest.LinDuration(t, 4*time.Second)
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.LeaseReads = leaseReads
	})
	c.waitLeader()
	var clients []*clientv3.Client
	for id := 0; id < 6; id++ {
		clients = append(clients, c.client(id%3))
	}
	// Every 0.7 s a member is stopped for 0.3 s and restarted from its
	// disk; a follower comes back behind and must catch up before its
	// reads may answer.
	servertest.RunLin(t, clients, run, servertest.LinNemesis{
		Members: 3, Leader: c.waitLeader, Stop: c.stop, Start: c.start,
		Every: 400 * time.Millisecond, Down: 300 * time.Millisecond, Seed: 7,
	})
}
