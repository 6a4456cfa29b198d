package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Tests of the safety properties of Figure 3 and of the rules that ensure
// them (§5.2-§5.4), each named after the rule it checks.

// TestElectionSafetyOneLeaderPerTerm (§5.2, Figure 3 "Election Safety"):
// several nodes campaign in the same term and their messages are delivered
// in random orders; no term ever has two leaders.
func TestElectionSafetyOneLeaderPerTerm(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 0))
		c := newCluster(5, nil)
		leaders := map[Term]NodeID{}
		for round := 0; round < 5; round++ {
			// Two or three nodes at the same term campaign at once.
			for _, id := range c.ids {
				if rnd.IntN(2) == 0 {
					c.nodes[id].Campaign()
				}
			}
			for step := 0; step < 200; step++ {
				for _, id := range c.ids {
					c.process(id)
				}
				if len(c.inflight) == 0 {
					break
				}
				// Deliver a random message, drop some.
				i := rnd.IntN(len(c.inflight))
				m := c.inflight[i]
				c.inflight = slices.Delete(c.inflight, i, i+1)
				if rnd.IntN(5) > 0 {
					c.stepOne(m)
				}
				for _, id := range c.ids {
					r := c.nodes[id].r
					if r.role != RoleLeader {
						continue
					}
					if l, ok := leaders[r.term]; ok && l != id {
						t.Fatalf("seed %d: term %d: got leaders %d and %d, want one", seed, r.term, l, id)
					}
					leaders[r.term] = id
				}
			}
		}
		if len(c.stepErrs) > 0 {
			t.Fatalf("seed %d: %v", seed, c.stepErrs)
		}
	}
}

// TestSplitVoteElectsNobody (§5.2): two candidates of one term that each get
// half of a four-node cluster both lose; neither becomes leader.
func TestSplitVoteElectsNobody(t *testing.T) {
	c := newCluster(4, nil)
	c.nodes[1].Campaign()
	c.nodes[2].Campaign()
	// 1 and 2 are candidates of term 1; 3 votes for 1, 4 for 2.
	c.process(1)
	c.process(2)
	c.take(func(m Message) bool { return (m.From == 1 && m.To == 4) || (m.From == 2 && m.To == 3) })
	c.stabilize()
	for _, id := range c.ids {
		if r := c.nodes[id].r; r.role == RoleLeader {
			t.Fatalf("node %d: got leader of term %d after a split vote, want no leader", id, r.term)
		}
	}
}

// TestLogMatchingConsistencyCheck (§5.3, "Log Matching"): a follower refuses
// an append whose preceding entry it does not hold with the same term, and
// an accepted append replaces a conflicting uncommitted suffix.
func TestLogMatchingConsistencyCheck(t *testing.T) {
	c := newClusterWithLogs([][]Term{{1, 1}, {1, 1, 2, 2}}, 3, 1, nil)
	n := c.nodes[2]
	// The entry before the append, 2/3, does not match 2/1.
	if err := n.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 2, LogTerm: 3, Entries: []Entry{{Index: 3, Term: 3}}}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	resp := findMsg(rd.SendAfterPersist, MsgAppResp)
	if resp == nil || !resp.Reject {
		t.Fatalf("append after 2/3: got %v, want a rejection", rd.SendAfterPersist)
	}
	if got := n.Status().LastIndex; got != 4 {
		t.Fatalf("last index after the rejected append: got %d, want 4", got)
	}
	n.Advance(rd)
	// After 2/1 the follower's 3/2, 4/2 conflict with the leader's 3/3.
	if err := n.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 3, Data: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	rd = n.Ready()
	if got, want := describeEntries(rd.Entries), "[3/3:x]"; got != want {
		t.Fatalf("entries to persist: got %s, want %s", got, want)
	}
	resp = findMsg(rd.SendAfterPersist, MsgAppResp)
	if resp == nil || resp.Reject || resp.Index != 3 {
		t.Fatalf("append after 2/1: got %v, want an acknowledgment of index 3", rd.SendAfterPersist)
	}
	c.persist(2, rd)
	n.Advance(rd)
	if got, want := describeEntries(c.storedLog(2)), "[1/1:1/1 2/1:2/1 3/3:x]"; got != want {
		t.Fatalf("stored log: got %s, want %s (the conflicting suffix replaced)", got, want)
	}
}

// TestLogMatchingAfterLeaderChanges (§5.3): after leaders with divergent
// uncommitted suffixes come and go, every log is identical once the cluster
// settles.
func TestLogMatchingAfterLeaderChanges(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.propose(1, "a")
	// Leader 1 appends entries nobody else receives.
	c.isolate(1)
	c.propose(1, "lost1")
	c.propose(1, "lost2")
	// 2 takes over and appends its own entries.
	c.campaign(2)
	c.heal()
	c.isolate(1)
	c.propose(2, "b")
	c.heal()
	c.tick(2, 1)
	c.stabilize()
	want := describeEntries(c.storedLog(2))
	for _, id := range c.ids {
		if got := describeEntries(c.storedLog(id)); got != want {
			t.Fatalf("node %d: got log %s, want %s", id, got, want)
		}
	}
	for _, id := range c.ids {
		if got := c.appliedData(id); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("node %d applied %q, want [a b]", id, got)
		}
	}
}

// TestElectionRestriction (§5.4.1): a voter grants its vote only to a
// candidate whose log is at least as up-to-date as its own: a later last
// term, or the same last term and at least the same length.
func TestElectionRestriction(t *testing.T) {
	// The voter's log ends at 3/2.
	tests := []struct {
		lastIndex Index
		lastTerm  Term
		grant     bool
	}{
		{3, 2, true},  // same log
		{4, 2, true},  // longer, same term
		{2, 2, false}, // shorter, same term
		{1, 3, true},  // shorter but later term
		{9, 1, false}, // longer but earlier term
		{0, 0, false}, // empty
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("last=%d/%d", tt.lastIndex, tt.lastTerm), func(t *testing.T) {
			c := newClusterWithLogs([][]Term{{1}, {1, 2, 2}, {1}}, 2, 1, nil)
			n := c.nodes[2]
			if err := n.Step(Message{Type: MsgVote, From: 1, To: 2, Term: 3, Index: tt.lastIndex, LogTerm: tt.lastTerm}); err != nil {
				t.Fatal(err)
			}
			rd := n.Ready()
			resp := findMsg(rd.SendAfterPersist, MsgVoteResp)
			if resp == nil {
				t.Fatalf("got no vote response in %v", rd.SendAfterPersist)
			}
			if got := !resp.Reject; got != tt.grant {
				t.Fatalf("vote granted: got %v, want %v", got, tt.grant)
			}
			wantVote := None
			if tt.grant {
				wantVote = 1
			}
			if rd.HardState.Vote != wantVote || rd.HardState.Term != 3 {
				t.Fatalf("hard state: got %+v, want term 3 vote %d", rd.HardState, wantVote)
			}
		})
	}
}

// TestLeaderCompletenessCandidateWithoutCommittedEntryLoses (§5.4,
// "Leader Completeness"): an entry committed on a majority keeps a node that
// lacks it from being elected.
func TestLeaderCompletenessCandidateWithoutCommittedEntryLoses(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.isolate(3)
	c.propose(1, "committed")
	if got := c.nodes[1].Status().Commit; got != 2 {
		t.Fatalf("commit: got %d, want 2", got)
	}
	c.heal()
	c.isolate(1)
	// 3 lacks entry 2; 2 holds it and refuses its vote.
	c.campaign(3)
	if r := c.nodes[3].r; r.role == RoleLeader {
		t.Fatalf("node 3 without the committed entry: got elected in term %d, want rejected", r.term)
	}
	c.campaign(2)
	if got := c.leader(); got != 2 {
		t.Fatalf("leader: got %d, want 2", got)
	}
	if got := c.appliedData(3); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("node 3 applied %q, want [committed]", got)
	}
}

// TestStateMachineSafetyAcrossLeaderCrashes (§5.4.3, "State Machine
// Safety"): leaders crash with uncommitted entries and restart; every node
// applies the same sequence of commands.
func TestStateMachineSafetyAcrossLeaderCrashes(t *testing.T) {
	c := newCluster(5, nil)
	for round := 0; round < 10; round++ {
		lead := NodeID(round%5 + 1)
		c.campaign(lead)
		if c.leader() != lead {
			t.Fatalf("round %d: got leader %d, want %d", round, c.leader(), lead)
		}
		c.propose(lead, fmt.Sprintf("ok%d", round))
		// Uncommitted entries that only the leader holds, then a crash.
		c.isolate(lead)
		c.propose(lead, fmt.Sprintf("lost%d", round))
		c.restart(lead)
		c.heal()
	}
	c.campaign(1)
	c.propose(1, "end")
	want := c.appliedData(1)
	if len(want) != 11 {
		t.Fatalf("node 1 applied %q, want the 10 ok commands and end", want)
	}
	for _, id := range c.ids {
		if got := c.appliedData(id); !slices.Equal(got, want) {
			t.Fatalf("node %d applied %q, want %q", id, got, want)
		}
	}
}

// TestFigure8LeaderDoesNotCommitEarlierTermEntryByCounting (§5.4.2,
// Figure 8): the Figure 8 (c) situation. S1, leader of term 4, replicates
// its term-2 entry at index 2 to a majority (S1, S2, S3). It must not
// commit it by counting replicas: S5, whose index 2 is of term 3, can still
// be elected (votes of S2, S3, S4) and overwrite it, which is case (d). Only
// once an entry of term 4 reaches a majority are both committed (case (e)),
// and then S5 can no longer win.
func TestFigure8LeaderDoesNotCommitEarlierTermEntryByCounting(t *testing.T) {
	var c *cluster
	// Every append that would make a follower store a term-4 entry is lost
	// (probes it rejects get through, so S1 backtracks and sends 2/2 alone).
	storesTerm4 := func(m Message) bool {
		return m.Type == MsgApp && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Term == 4 &&
			c.nodes[m.To].r.log.matchTerm(m.Index, m.LogTerm)
	}
	setup := func(drop func(Message) bool) *cluster {
		logs := [][]Term{{1, 2}, {1}, {1}, {1}, {1, 3}}
		// One entry per append, so that the term-2 entry travels alone.
		c = newClusterWithLogs(logs, 3, 1, func(cfg *Config) { cfg.MaxBytesPerMsg = 1 })
		c.isolate(5) // S5 "crashed" after term 3
		c.drop = drop
		c.campaign(1)
		if c.leader() != 1 || c.nodes[1].r.term != 4 {
			t.Fatalf("got leader %d in term %d, want S1 in term 4", c.leader(), c.nodes[1].r.term)
		}
		return c
	}

	t.Run("case c and d", func(t *testing.T) {
		// The no-op of term 4 never gets through; entry 2/2 does.
		c := setup(storesTerm4)
		c.tickAll(3)
		for _, id := range []NodeID{1, 2, 3} {
			if got := c.nodes[id].r.log.termOrZero(2); got != 2 {
				t.Fatalf("S%d: got entry 2 of term %d, want 2 (replicated to a majority)", id, got)
			}
		}
		if got := c.nodes[1].Status().Commit; got != 1 {
			t.Fatalf("S1 commit with 2/2 on a majority: got %d, want 1 (Figure 8: no commit of an earlier term's entry by counting)", got)
		}
		// (d): S1 crashes; S5 is elected and overwrites index 2.
		c.drop = nil
		c.heal()
		c.isolate(1)
		// S5 knows only term 3: its first try, in term 4, meets voters that
		// already voted for S1; its second, in term 5, wins.
		c.campaign(5)
		c.campaign(5)
		if got := c.leader(); got != 5 {
			t.Fatalf("leader after S1 crashes: got %d, want S5", got)
		}
		c.propose(5, "x")
		for _, id := range []NodeID{2, 3, 4, 5} {
			if got := c.nodes[id].r.log.termOrZero(2); got != 3 {
				t.Fatalf("S%d: got entry 2 of term %d, want 3 (S5's)", id, got)
			}
			for _, e := range c.applied[id] {
				if e.Index == 2 && e.Term == 2 {
					t.Fatalf("S%d applied the overwritten entry 2/2", id)
				}
			}
		}
	})

	t.Run("case e", func(t *testing.T) {
		c := setup(nil)
		c.tickAll(3)
		if got := c.nodes[1].Status().Commit; got != 3 {
			t.Fatalf("S1 commit once its term-4 entry is on a majority: got %d, want 3", got)
		}
		c.heal()
		c.isolate(1)
		c.campaign(5)
		c.campaign(5)
		if r := c.nodes[5].r; r.role == RoleLeader {
			t.Fatalf("S5 got elected in term %d after 2/2 and 3/4 committed, want rejected", r.term)
		}
	})
}

// TestFastBacktrackingOneRoundTripPerTerm (§5.3, "the leader can bypass all
// of the conflicting entries in that term"): a follower with a long
// divergent log is repaired with at most one rejected append per
// conflicting term, not one per entry.
func TestFastBacktrackingOneRoundTripPerTerm(t *testing.T) {
	cat := func(parts ...[]Term) []Term { return slices.Concat(parts...) }
	tests := []struct {
		name     string
		leader   []Term
		follower []Term
		// maxRejects is the number of distinct terms in the follower's
		// divergent suffix.
		maxRejects int
		// perEntry is what backtracking one entry at a time would cost.
		perEntry int
	}{
		{"follower longer, three stale terms", cat(terms(1, 1), terms(5, 50)), cat(terms(1, 1), terms(2, 30), terms(3, 30), terms(4, 30)), 3, 50},
		{"follower shorter, same terms", cat(terms(1, 1), terms(2, 100)), cat(terms(1, 1), terms(2, 10)), 1, 90},
		{"interleaved terms", cat(terms(1, 1), terms(2, 20), terms(4, 20), terms(6, 20)), cat(terms(1, 1), terms(2, 25), terms(3, 25), terms(5, 25)), 3, 35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClusterWithLogs([][]Term{tt.leader, tt.follower, tt.leader}, 6, 1, nil)
			rejects := 0
			c.onReady = func(id NodeID, rd Ready) {
				for _, m := range rd.SendAfterPersist {
					if m.Type == MsgAppResp && m.Reject && m.From == 2 {
						rejects++
					}
				}
			}
			c.campaign(1)
			if c.leader() != 1 {
				t.Fatalf("got leader %d, want 1", c.leader())
			}
			if got, want := describeEntries(c.storedLog(2)), describeEntries(c.storedLog(1)); got != want {
				t.Fatalf("follower log: got %s, want the leader's %s", got, want)
			}
			if rejects > tt.maxRejects {
				t.Fatalf("rejected appends: got %d, want at most %d (one per term; one per entry would be %d)", rejects, tt.maxRejects, tt.perEntry)
			}
		})
	}
}

func findMsg(msgs []Message, t MessageType) *Message {
	for i := range msgs {
		if msgs[i].Type == t {
			return &msgs[i]
		}
	}
	return nil
}
