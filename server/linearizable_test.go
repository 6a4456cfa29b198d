package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

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

	h := servertest.NewLinHistory()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const clients = 6
	for id := 0; id < clients; id++ {
		cli := c.client(id % 3)
		wg.Add(1)
		go func() {
			defer wg.Done()
			servertest.RunLinClient(ctx, h, cli, id)
		}()
	}

	// The nemesis: every 0.7 s, stop a member for 0.3 s and restart it
	// from its disk; the leader two times in three, else a follower, which
	// comes back behind and must catch up before its reads may answer.
	restarts, leaders := 0, 0
	nemesis := rand.New(rand.NewPCG(7, 7))
	deadline := time.Now().Add(run)
	for time.Now().Before(deadline) {
		time.Sleep(400 * time.Millisecond)
		victim := c.waitLeader()
		if nemesis.IntN(3) == 0 {
			victim = (victim + 1 + nemesis.IntN(2)) % 3
		} else {
			leaders++
		}
		c.stop(victim)
		time.Sleep(300 * time.Millisecond)
		c.start(victim)
		restarts++
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()

	counts := h.Check(t, os.Getenv("LOCKSTEP_LINEARIZABLE_HTML"))
	t.Logf("%d restarts (%d of the leader); %v", restarts, leaders, counts)
}
