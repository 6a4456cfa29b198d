package e2e

import (
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
	c := newProcCluster(t, 3)
	c.runLin(t, 6, servertest.LinNemesis{
		Stop:  func(i int) { c.members[i].p.kill() }, // SIGKILL
		Start: func(i int) { c.startState(i, "existing") },
		Every: 500 * time.Millisecond, Down: 300 * time.Millisecond, Seed: 11,
	})
}

// runLin runs servertest.RunLin on c for LOCKSTEP_LINEARIZABLE_SECONDS
// (default 6) with clients clients pinned in turn to the members, once they
// agree on a leader; it fills in the nemesis's Members and Leader.
func (c *procCluster) runLin(t *testing.T, clients int, n servertest.LinNemesis) {
	t.Helper()
	all := newClient(t, c.endpoints())
	c.leader(all, -1)
	n.Members = len(c.members)
	n.Leader = func() int { return c.leader(all, -1) }
	servertest.RunLin(t, c.pinnedClients(clients), servertest.LinDuration(t, 6*time.Second), n)
}
