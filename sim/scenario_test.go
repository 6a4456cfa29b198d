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

// campaignUntil makes id campaign every few ticks until one of want leads.
func campaignUntil(t *testing.T, w *World, id raft.NodeID, want ...raft.NodeID) raft.NodeID {
	t.Helper()
	for i := 0; i < 40; i++ {
		if l := w.Leader(); l != raft.None {
			for _, x := range want {
				if l == x {
					return l
				}
			}
		}
		w.Campaign(id)
		w.RunTicks(5)
	}
	t.Fatalf("n%d did not win an election (%s)", id, w.applyState())
	return raft.None
}

func holds(w *World, id raft.NodeID, data []byte) bool {
	for _, e := range w.node(id).disk.Log() {
		if bytes.Equal(e.Data, data) {
			return true
		}
	}
	return false
}

// TestFigure8OldTermEntryOnMajorityIsNotCommittedByCounting replays Figure
// 8 of the Raft paper (§5.4.2). A leader of term 1.. writes A at index k to
// one follower and crashes; e wins a later term with an entry of its own at
// k, held only by itself, and crashes; the first leader returns in an even
// later term and replicates A to a majority, but not its own entries. A is
// now on a majority, yet must not count as committed: e can still win the
// next election (its last term is higher) and overwrite A. If raft
// committed A by counting, a replica would apply A at k and e's entry would
// later be applied there too, which the checker reports.
func TestFigure8OldTermEntryOnMajorityIsNotCommittedByCounting(t *testing.T) {
	opt := quiet(15, 5)
	opt.MaxBytesPerMsg = 1 // one entry per append: A and the new leader's entries travel apart
	opt.ElectionTicks = 20
	var filter func(m *raft.Message) bool
	opt.Hooks.Deliver = func(w *World, m *raft.Message) bool { return filter == nil || filter(m) }
	w := NewWorld(opt)
	a := waitLeader(t, w)
	w.RunTicks(10)
	rest := others(w, a)
	b, c, d, e := rest[0], rest[1], rest[2], rest[3]

	// (a) a writes A, which reaches b only.
	w.Cut(a, c)
	w.Cut(a, d)
	w.Cut(a, e)
	callA := w.Invoke(a, false, OpPut, "k0", "A", "")
	dataA := encodeCommand(callA.op.cmd)
	if !w.RunUntil(func() bool { return holds(w, b, dataA) }, 50) {
		t.Fatalf("A did not reach n%d", b)
	}
	k, _ := w.node(b).disk.LastIndex()

	// (b) a crashes; e wins with c and d, appends at k, sends nothing, crashes.
	w.Crash(a)
	w.HealNetwork()
	w.Isolate(b)
	// Whichever of c, d, e wins plays e's part: it must send nothing.
	filter = func(m *raft.Message) bool { return m.Type != raft.MsgApp || m.From == a || m.From == b }
	if win := campaignUntil(t, w, e, c, d, e); win != e {
		if win == c {
			c = e
		} else {
			d = e
		}
		e = win
	}
	w.RunTicks(3)
	if last, _ := w.node(e).disk.LastIndex(); last < k {
		t.Fatalf("n%d's entry at %d is not durable (last %d)", e, k, last)
	}
	w.Crash(e)

	// (c) a returns and wins; A reaches c, the leader's own entries reach
	// neither c nor d.
	w.HealNetwork()
	w.Restart(a)
	filter = func(m *raft.Message) bool {
		if m.Type != raft.MsgApp || (m.To != c && m.To != d) {
			return true
		}
		if m.To == d {
			return false
		}
		// c gets the old-term part of each append only (as if the rest
		// were lost), so it can ack A without ever holding the leader's
		// entries.
		var keep []raft.Entry
		for _, x := range m.Entries {
			if x.Term != m.Term {
				keep = append(keep, x)
			}
		}
		m.Entries = keep
		return true
	}
	l2 := campaignUntil(t, w, a, a, b)
	if !w.RunUntil(func() bool { return holds(w, c, dataA) }, 100) {
		t.Fatalf("A did not reach n%d", c)
	}
	w.RunTicks(30)
	if int(k) < len(w.chk.recs) && w.chk.recs[k].set {
		t.Fatalf("index %d was applied (term %d) while A was only on a majority from an old term", k, w.chk.recs[k].term)
	}

	// (d) the leader crashes; e wins again (its last term beats A's) and
	// overwrites A.
	w.Crash(l2)
	other := a
	if l2 == a {
		other = b
	}
	filter = nil
	w.Isolate(other)
	w.Restart(e)
	campaignUntil(t, w, e, e)
	w.RunTicks(30)
	w.HealNetwork()
	finish(t, w)
	if w.Executed(callA) {
		t.Fatalf("A was executed, though e's entry replaced it")
	}
	if rec := w.chk.recs[k]; !rec.set || hashBytes(dataA) == rec.data {
		t.Fatalf("index %d holds A or nothing (%+v)", k, rec)
	}
}

// TestLaggingFollowerCatchesUpFromACompactedSnapshot: while a follower is
// isolated, the others compact kv's history and the log behind their
// snapshots. The follower can only catch up from a snapshot, which must
// carry the compacted kv state (and the deduplication table) whole: after
// healing it must converge to the same state, and every read stays
// linearizable although older revisions are gone.
func TestLaggingFollowerCatchesUpFromACompactedSnapshot(t *testing.T) {
	opt := quiet(16, 3)
	opt.Clients, opt.Keys = 3, 2
	opt.SnapshotEvery, opt.CompactEvery = 5, 4
	w := NewWorld(opt)
	lead := waitLeader(t, w)
	f := others(w, lead)[0]
	w.Isolate(f)
	w.RunTicks(150)
	if w.stats.Compactions == 0 || w.node(lead).sm.store.CompactRevision() == 0 {
		t.Fatalf("the leader compacted nothing (%d proposed)", w.stats.Compactions)
	}
	sent := w.stats.SnapshotsSent
	w.HealNetwork()
	finish(t, w)
	if w.stats.SnapshotsSent == sent {
		t.Fatalf("the follower caught up without a snapshot")
	}
	if got, want := w.node(f).sm.store.CompactRevision(), w.node(lead).sm.store.CompactRevision(); got != want || got == 0 {
		t.Fatalf("follower compact revision %d, leader %d: want equal and above 0", got, want)
	}
	t.Logf("%d ops ok, %d compactions proposed, %d snapshots sent", w.stats.OpsOK, w.stats.Compactions, w.stats.SnapshotsSent)
}

// TestPausedLeaderDoesNotTrustAnExpiredLease: with lease reads, a leader is
// paused (and misses its ticks) while cut off; the others elect a leader and
// commit a write. A read sent to the old leader after that write completed
// reaches it when it resumes. By its ticks its lease is still young; by its
// clock it ran out long ago, so it must not answer from it: its heartbeat
// round cannot complete, and the read goes unanswered rather than stale.
// (With the lease 100 times too long, as if timed by ticks, it answers v1.)
func TestPausedLeaderDoesNotTrustAnExpiredLease(t *testing.T) {
	opt := quiet(14, 3)
	opt.LeaseReads = true
	w := NewWorld(opt)
	old := waitLeader(t, w)
	first := w.Invoke(old, true, OpPut, "k0", "v1", "")
	if !w.RunUntil(func() bool { return first.Done }, 100) || !first.Answered {
		t.Fatalf("the first write did not complete: %s", w.applyState())
	}
	w.RunTicks(3)                 // heartbeat rounds: the leader holds a fresh lease
	w.Pause(old, 25*UnitsPerTick) // past the lease, before the read times out
	w.Isolate(old)
	newLead := waitLeader(t, w, others(w, old)...)
	second := w.Invoke(newLead, false, OpPut, "k0", "v2", "")
	if !w.RunUntil(func() bool { return second.Done }, 40) || !second.Answered {
		t.Fatalf("the new leader did not commit a write while the old one was paused: %s", w.applyState())
	}
	read := w.Invoke(old, false, OpGet, "k0", "", "")
	w.RunUntil(func() bool { return read.Done }, 100)
	if read.Answered {
		t.Fatalf("the resumed old leader answered a read after the new leader's write: %+v", read.Answer)
	}
	w.HealNetwork()
	finish(t, w)
}
