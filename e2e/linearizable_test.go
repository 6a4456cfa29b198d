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
	run := servertest.LinDuration(t, 6*time.Second)
	c := newProcCluster(t, 3)
	all := newClient(t, c.endpoints())
	c.leader(all, -1)

	servertest.RunLin(t, c.pinnedClients(6), run, servertest.LinNemesis{
		Members: 3,
		Leader:  func() int { return c.leader(all, -1) },
		Stop:    func(i int) { c.members[i].p.kill() }, // SIGKILL
		Start:   func(i int) { c.startState(i, "existing") },
		Every:   500 * time.Millisecond, Down: 300 * time.Millisecond, Seed: 11,
	})
}
