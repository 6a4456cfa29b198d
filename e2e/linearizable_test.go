package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/leaktest"
	"github.com/lockstep/lockstep/server/servertest"
)

// TestLinearizableUnderSIGKILL is TestLinearizableUnderRestarts of package
// server with real processes and crashes: members, most often the leader,
// are killed with SIGKILL (no clean shutdown, whatever was not synced is
// gone) and restarted on their data dirs, while etcd clients pinned to each
// member run the random workload. The history must be linearizable.
//
// LOCKSTEP_LINEARIZABLE_SECONDS makes the run longer (default 6).
func TestLinearizableUnderSIGKILL(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	run := servertest.LinDuration(t, 6*time.Second)
	c := newProcCluster(t, 3)
	all := newClient(t, c.endpoints())
	c.leader(all, -1)

	h := servertest.NewLinHistory()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for id := 0; id < 6; id++ {
		cli := newClient(t, []string{c.members[id%3].endpoint()})
		wg.Add(1)
		go func() {
			defer wg.Done()
			servertest.RunLinClient(ctx, h, cli, id)
		}()
	}

	kills, leaders := 0, 0
	nemesis := rand.New(rand.NewPCG(11, 11))
	deadline := time.Now().Add(run)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		victim := c.leader(all, -1)
		if nemesis.IntN(3) == 0 {
			victim = (victim + 1 + nemesis.IntN(2)) % 3
		} else {
			leaders++
		}
		c.members[victim].p.kill() // SIGKILL
		time.Sleep(300 * time.Millisecond)
		c.startState(victim, "existing")
		kills++
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()

	counts := h.Check(t, os.Getenv("LOCKSTEP_LINEARIZABLE_HTML"))
	t.Logf("%d kills (%d of the leader); %v", kills, leaders, counts)
}
