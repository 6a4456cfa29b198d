//go:build unix

package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/leaktest"
	"github.com/lockstep/lockstep/server/servertest"
)

// TestLinearizableUnderSIGSTOP pauses members, most often the leader, with
// SIGSTOP for 1 s (past the lease and an election) and resumes them with
// SIGCONT, under the same workload: a resumed leader must not answer from a
// lease its clock says ran out, nor trust anything else it believed before
// the pause.
func TestLinearizableUnderSIGSTOP(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	c := newProcCluster(t, 3)
	c.runLin(t, 6, servertest.LinNemesis{
		Stop:  func(i int) { c.signal(i, syscall.SIGSTOP) },
		Start: func(i int) { c.signal(i, syscall.SIGCONT) },
		Every: 500 * time.Millisecond, Down: time.Second, Seed: 17,
	})
}

// TestLinearizableWhenAPausedLeaderResumesCutOff: the leader is cut off
// from its peers (a proxy per link) and stopped with SIGSTOP for 1 s, so the
// others elect a leader and commit writes; then it resumes still cut off,
// for 0.7 s, while its clients reach it, before the links come back. By the
// ticks it counted it still holds its lease, by its clock the lease ran out,
// and no message tells it of the new term until CheckQuorum deposes it.
// With the lease 100 times too long it answers stale reads in that window.
// The window is short: a 6 s run caught that in 1 of 3 runs, a 40 s one
// (LOCKSTEP_LINEARIZABLE_SECONDS=40) did; the simulator's
// TestPausedLeaderDoesNotTrustAnExpiredLease always does.
func TestLinearizableWhenAPausedLeaderResumesCutOff(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	c := newLinkedProcCluster(t, 3)
	// Four clients a member: a paused member's clients wait on whatever
	// they sent before the pause, and only those whose last request was a
	// read send more in the window.
	c.runLin(t, 12, servertest.LinNemesis{
		Stop: func(i int) {
			c.isolate(i, true)
			c.signal(i, syscall.SIGSTOP)
		},
		Start: func(i int) {
			c.signal(i, syscall.SIGCONT)
			time.Sleep(700 * time.Millisecond)
			c.isolate(-1, false)
		},
		Every: 500 * time.Millisecond, Down: time.Second, Seed: 19, OnlyLeader: true,
	})
}

// signal sends sig to member i; a failure fails the test (a pause that did
// not happen would test nothing).
func (c *procCluster) signal(i int, sig syscall.Signal) {
	if err := c.members[i].p.cmd.Process.Signal(sig); err != nil {
		c.t.Errorf("%v to member %d: %v", sig, i, err)
	}
}
