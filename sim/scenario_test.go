package sim

import (
	"bytes"
	"testing"

	"github.com/lockstep/lockstep/raft"
)

// quiet is a fault-free world for scripted scenarios: no workload, no
// random faults, a short and reliable network.
func quiet(seed uint64, nodes int) Options {
	return Options{Seed: seed, Nodes: nodes, Keys: 1, MinDelay: 1, MaxDelay: 3, PersistMax: 1,
		ClientTimeout: 20, ClientAttempts: 3, LivenessTicks: 300}
}

func waitLeader(t *testing.T, w *World, among ...raft.NodeID) raft.NodeID {
	t.Helper()
	ok := w.RunUntil(func() bool {
		l := w.Leader()
		if l == raft.None {
			return false
		}
		for _, id := range among {
			if id == l {
				return true
			}
		}
		return len(among) == 0
	}, 500)
	if !ok {
		t.Fatalf("no leader among %v after 500 ticks (%s)", among, w.applyState())
	}
	return w.Leader()
}

func finish(t *testing.T, w *World) {
	t.Helper()
	if res := w.Finish(); res.Failed() {
		t.Fatalf("%s", res)
	}
}

func others(w *World, id ...raft.NodeID) []raft.NodeID {
	var out []raft.NodeID
next:
	for _, x := range w.ids {
		for _, y := range id {
			if x == y {
				continue next
			}
		}
		out = append(out, x)
	}
	return out
}

// TestPartitionedOldLeaderNeverCommitsItsProposals: a leader cut off in a
// minority (2 of 5) keeps accepting proposals until CheckQuorum makes it
// step down, but none of them can reach a majority, so none may ever be
// applied (§5.4: only a majority commits); once the partition heals, the
// new leader's log replaces them. Meanwhile the majority elects a leader
// and accepts writes.
func TestPartitionedOldLeaderNeverCommitsItsProposals(t *testing.T) {
	w := NewWorld(quiet(11, 5))
	old := waitLeader(t, w)
	w.RunTicks(10)
	peer := others(w, old)[0]
	w.Split([]raft.NodeID{old, peer})
	stale := w.Invoke(old, false, OpPut, "k0", "stale", "")
	w.RunTicks(5)
	majority := others(w, old, peer)
	waitLeader(t, w, majority...)
	fresh := w.Invoke(w.Leader(), true, OpPut, "k0", "fresh", "")
	if !w.RunUntil(func() bool { return fresh.Done }, 300) || !fresh.Answered {
		t.Fatalf("the majority did not commit a write: %s", w.applyState())
	}
	w.RunTicks(50)
	if w.Executed(stale) || stale.Answered {
		t.Fatalf("the minority leader's proposal was executed while partitioned")
	}
	w.HealNetwork()
	finish(t, w)
	if w.Executed(stale) {
		t.Fatalf("the minority leader's proposal was executed after healing")
	}
}

// TestLeaderCrashesAfterAppendBeforeCommit: the leader makes a client's
// entry durable on its own disk, but no follower receives it (its outgoing
// links are cut) and it crashes. The entry was never on a majority, so it
// must not commit: the others elect a leader whose log lacks it, and when
// the old leader restarts its uncommitted suffix is overwritten (§5.3).
// The client, which got no answer, sees its write never take effect.
func TestLeaderCrashesAfterAppendBeforeCommit(t *testing.T) {
	opt := quiet(12, 3)
	var lead raft.NodeID
	var data []byte
	crashed := false
	opt.Hooks.AfterPersist = func(w *World, id raft.NodeID, rd *raft.Ready) {
		for _, e := range rd.Entries {
			if id == lead && data != nil && bytes.Equal(e.Data, data) && !crashed {
				crashed = true
				w.Crash(id)
			}
		}
	}
	w := NewWorld(opt)
	lead = waitLeader(t, w)
	w.RunTicks(10)
	for _, o := range others(w, lead) {
		w.Cut(lead, o)
	}
	call := w.Invoke(lead, false, OpPut, "k0", "lost", "")
	data = encodeCommand(call.op.cmd)
	if !w.RunUntil(func() bool { return crashed }, 50) {
		t.Fatalf("the leader never persisted the write")
	}
	w.HealNetwork()
	newLead := waitLeader(t, w, others(w, lead)...)
	w.Invoke(newLead, true, OpPut, "k0", "after", "")
	w.RunTicks(30)
	w.Restart(lead)
	finish(t, w)
	if w.Executed(call) {
		t.Fatalf("an entry held only by the crashed leader was committed")
	}
}

// TestFlappingLinkStillMakesProgress: the link between the leader and one
// follower goes down and up every few ticks. The other follower keeps a
// majority with the leader, so clients keep completing operations, and
// nothing the flapping does may break safety or linearizability.
func TestFlappingLinkStillMakesProgress(t *testing.T) {
	opt := quiet(13, 3)
	opt.Clients, opt.Keys = 3, 2
	w := NewWorld(opt)
	lead := waitLeader(t, w)
	f := others(w, lead)[0]
	before := w.stats.OpsOK
	for i := 0; i < 60; i++ {
		on := i%2 == 0
		w.cut[lead][f], w.cut[f][lead] = on, on
		w.RunTicks(1 + i%4)
	}
	w.HealNetwork()
	if got := w.stats.OpsOK - before; got < 20 {
		t.Fatalf("got %d operations completed while the link flapped, want at least 20", got)
	}
	finish(t, w)
}

// TestReplicaRestartsFromATornLastWrite: with the real storage package, a
// follower crashes while persisting a Ready; the filesystem keeps part of
// the unsynced write and tears its last piece. On restart the store must
// cut the torn tail off (it was never acknowledged: the ack goes out only
// after the sync), and the replica must catch up with no invariant broken.
func TestReplicaRestartsFromATornLastWrite(t *testing.T) {
	opt := quiet(14, 3)
	opt.RealStorage, opt.TornWrites = true, true
	opt.Clients, opt.Keys = 3, 2
	opt.PersistMax = 8
	w := NewWorld(opt)
	lead := waitLeader(t, w)
	f := others(w, lead)[0]
	for i := 0; i < 200 && w.stats.TornTails == 0; i++ {
		r := w.node(f)
		if !w.RunUntil(func() bool { return r.up && r.persisting && len(r.rd.Entries) > 0 }, 50) {
			t.Fatalf("the follower never persisted entries")
		}
		w.Crash(f)
		w.RunTicks(2)
		w.Restart(f)
		w.RunTicks(5)
	}
	if w.stats.TornTails == 0 {
		t.Fatalf("no crash left a torn tail in 200 tries")
	}
	t.Logf("%d crashes until a torn tail", w.stats.Crashes)
	finish(t, w)
}
