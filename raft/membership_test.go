package raft

import (
	"slices"
	"testing"
)

// newClusterWithConf starts nodes ids over storage holding cs.
func newClusterWithConf(ids []NodeID, cs ConfState) *cluster {
	c := &cluster{
		ids:       ids,
		nodes:     map[NodeID]*Node{},
		storage:   map[NodeID]*MemoryStorage{},
		applied:   map[NodeID][]Entry{},
		reads:     map[NodeID][]ReadState{},
		cut:       map[NodeID]map[NodeID]bool{},
		dropTypes: map[MessageType]bool{},
	}
	for _, id := range ids {
		ms := NewMemoryStorage()
		ms.SetConfState(cs)
		c.storage[id] = ms
		c.start(id)
	}
	return c
}

// TestLearnerReceivesLogButNeitherVotesNorCounts (§4.2.1, non-voting
// members): a learner gets every committed entry, never campaigns, its vote
// is not asked for, and its acknowledgment does not count towards a commit.
func TestLearnerReceivesLogButNeitherVotesNorCounts(t *testing.T) {
	c := newClusterWithConf([]NodeID{1, 2, 3, 4}, ConfState{Voters: []NodeID{1, 2, 3}, Learners: []NodeID{4}})
	var votesTo4 int
	c.onReady = func(id NodeID, rd Ready) {
		for _, m := range rd.SendAfterPersist {
			if m.Type == MsgVote && m.To == 4 {
				votesTo4++
			}
		}
	}
	c.campaign(1)
	if votesTo4 != 0 {
		t.Fatalf("vote requests to the learner: got %d, want 0", votesTo4)
	}
	c.propose(1, "a")
	if got := c.appliedData(4); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("learner applied %q, want [a]", got)
	}
	// The learner never campaigns, however long it waits.
	c.isolate(4)
	c.tick(4, 100)
	c.stabilize()
	if r := c.nodes[4].r; r.role != RoleFollower || r.term != 1 {
		t.Fatalf("learner after 100 ticks alone: got %s term %d, want Follower term 1", r.role, r.term)
	}
	c.nodes[4].Campaign()
	if r := c.nodes[4].r; r.role != RoleFollower {
		t.Fatalf("learner after Campaign: got %s, want Follower", r.role)
	}
	// With 2 and 3 cut off, the leader and the learner are not a quorum.
	c.heal()
	c.isolate(2)
	c.cutLink(1, 3)
	c.cutLink(3, 1)
	c.propose(1, "b")
	if got := c.nodes[1].Status().Commit; got != 2 {
		t.Fatalf("commit with only the learner acknowledging: got %d, want 2", got)
	}
	if got := c.nodes[4].Status().LastIndex; got != 3 {
		t.Fatalf("learner last index: got %d, want 3 (it still receives the log)", got)
	}
	// A transfer to a learner is ignored.
	if err := c.nodes[1].TransferLeadership(4); err != nil {
		t.Fatal(err)
	}
	if got := c.nodes[1].Status().LeadTransferee; got != None {
		t.Fatalf("transferee after a transfer to the learner: got %d, want none", got)
	}
}

// TestJointConsensusNeedsBothMajorities (§4.3): in a joint configuration an
// election and a commit each need a majority of the incoming and of the
// outgoing voters.
func TestJointConsensusNeedsBothMajorities(t *testing.T) {
	cs := ConfState{Voters: []NodeID{1, 2, 3}, VotersOutgoing: []NodeID{1, 4, 5}}
	c := newClusterWithConf([]NodeID{1, 2, 3, 4, 5}, cs)
	// 1, 2, 3 are a majority of the incoming half only.
	c.isolate(4)
	c.isolate(5)
	c.campaign(1)
	if r := c.nodes[1].r; r.role == RoleLeader {
		t.Fatalf("got elected by the incoming half alone, want not")
	}
	c.heal()
	c.isolate(2)
	c.isolate(3)
	// 1, 4, 5: a majority of the outgoing half only.
	c.campaign(1)
	if r := c.nodes[1].r; r.role == RoleLeader {
		t.Fatalf("got elected by the outgoing half alone, want not")
	}
	c.heal()
	c.isolate(3)
	c.isolate(5)
	// 1, 2, 4: a majority of each.
	c.campaign(1)
	if r := c.nodes[1].r; r.role != RoleLeader {
		t.Fatalf("got %s with majorities of both halves, want Leader", r.role)
	}
	last := c.nodes[1].Status().Commit
	// Only 1 and 2 acknowledge: the outgoing half lacks a majority.
	c.isolate(4)
	c.propose(1, "x")
	if got := c.nodes[1].Status().Commit; got != last {
		t.Fatalf("commit acknowledged by the incoming half only: got %d, want %d", got, last)
	}
	c.heal()
	c.tickAll(2)
	if got := c.nodes[1].Status().Commit; got != last+1 {
		t.Fatalf("commit once both halves acknowledge: got %d, want %d", got, last+1)
	}
}
