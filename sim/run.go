package sim

import (
	"bytes"
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/lockstep/lockstep/raft"
)

// Result is the outcome of a run.
type Result struct {
	Seed      uint64
	TraceHash uint64
	Failures  []string
	Stats     Stats
	Ops       int
	// Linearizability is porcupine's verdict (Ok, Illegal, or Unknown when
	// the check ran out of time).
	Linearizability porcupine.CheckResult
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool { return len(r.Failures) > 0 }

// ReplayCommand is the command line that reruns this seed with a trace.
func (r *Result) ReplayCommand() string {
	return fmt.Sprintf("go test ./sim -run 'TestSeeds$' -seed=%d -v -trace=/tmp/sim-%d.trace", r.Seed, r.Seed)
}

func (r *Result) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "seed %d: ", r.Seed)
	if r.Failed() {
		fmt.Fprintf(&b, "FAILED\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "  %s\n", f)
		}
		fmt.Fprintf(&b, "  replay: %s\n", r.ReplayCommand())
	} else {
		fmt.Fprintf(&b, "ok")
	}
	s := r.Stats
	fmt.Fprintf(&b, " (ticks %d, events %d, msgs %d/%d dropped, crashes %d (%d torn tails), partitions %d, pauses %d, leaders %d, snapshots %d taken %d sent, compactions %d, ops %d: %d ok %d unknown, trace %016x)",
		s.Ticks, s.Events, s.MsgsSent, s.MsgsDropped, s.Crashes, s.TornTails, s.Partitions, s.Pauses, s.Leaders, s.SnapshotsTaken, s.SnapshotsSent, s.Compactions,
		r.Ops, s.OpsOK, s.OpsUnknown, r.TraceHash)
	return b.String()
}

// Run simulates one seed end to end: a phase of random faults under a
// client workload, then healing, the liveness probe, and the final checks.
func Run(opt Options) *Result {
	w := NewWorld(opt)
	w.RunTicks(w.opt.FaultTicks)
	return w.Finish()
}

// Finish ends the faults, then requires progress and convergence and runs
// the end-of-run checks. Scenarios call it after their script.
func (w *World) Finish() *Result {
	if !w.done {
		w.finish()
	}
	res := &Result{Seed: w.opt.Seed, TraceHash: w.trace.h, Failures: w.failures, Stats: w.stats, Ops: len(w.hist.ops)}
	res.Linearizability = w.linearizability
	return res
}

func (w *World) finish() {
	w.healAll()
	w.trace.line(w, "--- faults end; liveness probe")
	healed := w.ticks
	// Liveness: with every node up and the network whole, a leader must be
	// elected and a new write must commit within LivenessTicks.
	done := false
	w.probe.submit(OpPut, w.key(0), "probe", "", raft.None, func(o *op) { done = true })
	if !w.RunUntil(func() bool { return done }, w.opt.LivenessTicks) {
		if !w.done {
			w.fail("liveness: no write committed within %d ticks after faults stopped (leader n%d)", w.opt.LivenessTicks, w.Leader())
		}
		return
	}
	w.trace.line(w, "--- liveness ok after %d ticks; quiescing", w.ticks-healed)
	// Quiesce: clients stop starting operations and finish (or give up)
	// theirs; every replica must apply the same log.
	w.stopClients = true
	idle := func() bool {
		for _, c := range w.clients {
			if c.cur != nil {
				return false
			}
		}
		return w.converged()
	}
	limit := w.opt.ClientAttempts*(w.opt.ClientTimeout+5) + w.opt.LivenessTicks
	if !w.RunUntil(idle, limit) {
		if !w.done {
			w.fail("convergence: replicas did not apply the same log within %d ticks (%s)", limit, w.applyState())
		}
		return
	}
	// Final reads of every key: an acknowledged write must still be
	// visible (porcupine checks they agree with the history).
	for k := 0; k < w.opt.Keys && !w.done; k++ {
		done := false
		w.probe.submit(OpGet, w.key(k), "", "", raft.None, func(o *op) { done = true })
		if !w.RunUntil(func() bool { return done }, w.opt.LivenessTicks) {
			if !w.done {
				w.fail("liveness: the final read of %s did not complete within %d ticks", w.key(k), w.opt.LivenessTicks)
			}
			return
		}
	}
	w.RunUntil(w.converged, w.opt.LivenessTicks)
	w.finalChecks()
}

// converged: every replica is up, idle, and has applied the leader's
// commit index.
func (w *World) converged() bool {
	lead := w.Leader()
	if lead == raft.None {
		return false
	}
	commit := w.node(lead).rn.Status().Commit
	for _, r := range w.nodes {
		if !r.up || r.persisting || r.applied != commit || r.rn.HasReady() {
			return false
		}
	}
	return true
}

func (w *World) applyState() string {
	var b bytes.Buffer
	for _, r := range w.nodes {
		if !r.up {
			fmt.Fprintf(&b, "n%d down; ", r.id)
			continue
		}
		st := r.rn.Status()
		fmt.Fprintf(&b, "n%d %s term %d commit %d applied %d last %d; ", r.id, st.Role, st.Term, st.Commit, r.applied, st.LastIndex)
	}
	return b.String()
}

func (w *World) finalChecks() {
	if w.done {
		return
	}
	w.chk.checkLogs()
	if w.done {
		return
	}
	// Every replica holds the same state: kv's snapshot image is a
	// function of the state alone, so equal images (and their digests)
	// mean equal kv stores and deduplication tables.
	ref := w.nodes[0]
	refSnap := ref.sm.Snapshot()
	for _, r := range w.nodes[1:] {
		if snap := r.sm.Snapshot(); r.applied != ref.applied || !bytes.Equal(snap, refSnap) {
			w.fail("convergence: n%d (applied %d, state digest %x) and n%d (applied %d, state digest %x) hold different states",
				ref.id, ref.applied, hashBytes(refSnap), r.id, r.applied, hashBytes(snap))
			return
		}
	}
	// No acknowledged write is lost: each is recorded as applied in the
	// state every replica converged to.
	for _, cmd := range w.chk.acked {
		if s, ok := ref.sm.sessions[cmd.ClientID]; !ok || s.req < cmd.ReqID {
			w.fail("lost write: %s was acknowledged but the final state never applied it", describeCmd(cmd))
			return
		}
	}
	executed := func(c Command) bool { return w.chk.executed[reqKey{c.ClientID, c.ReqID}] }
	res, info := w.hist.linearizable(executed, 10*time.Second)
	w.linearizability = res
	switch res {
	case porcupine.Illegal:
		w.fail("linearizability: the client history (%d operations) has no linearization%s", len(w.hist.ops), w.explain(info))
	case porcupine.Unknown:
		w.fail("linearizability: the check timed out on %d operations", len(w.hist.ops))
	}
}

// explain names the operations porcupine could not fit, to start a
// diagnosis.
func (w *World) explain(info porcupine.LinearizationInfo) string {
	var b bytes.Buffer
	parts := info.PartialLinearizationsOperations()
	for p, lins := range parts {
		if len(lins) == 0 {
			continue
		}
		longest := lins[0]
		for _, l := range lins {
			if len(l) > len(longest) {
				longest = l
			}
		}
		fmt.Fprintf(&b, "; partition %d: longest linearizable prefix has %d ops", p, len(longest))
	}
	return b.String()
}

func (s *Stats) add(o Stats) {
	s.Ticks += o.Ticks
	s.Events += o.Events
	s.MsgsSent += o.MsgsSent
	s.MsgsDropped += o.MsgsDropped
	s.MsgsDup += o.MsgsDup
	s.Crashes += o.Crashes
	s.Partitions += o.Partitions
	s.TornTails += o.TornTails
	s.StaleCommits += o.StaleCommits
	s.Leaders += o.Leaders
	s.SnapshotsTaken += o.SnapshotsTaken
	s.SnapshotsSent += o.SnapshotsSent
	s.Compactions += o.Compactions
	s.Pauses += o.Pauses
	s.OpsOK += o.OpsOK
	s.OpsUnknown += o.OpsUnknown
}
