package raft

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Tests of the protocol extensions of Ongaro's thesis, each citing the
// section it checks.

func withOptions(preVote, checkQuorum bool) func(*Config) {
	return func(c *Config) {
		c.PreVote = preVote
		c.CheckQuorum = checkQuorum
	}
}

// TestPreVotePartitionedNodeRejoiningDoesNotDisruptLeader (§9.6): a node cut
// off from the cluster keeps timing out, but with PreVote it never wins a
// pre-vote, so its term stays put and, when it rejoins, the leader keeps
// its leadership and term. Without PreVote the same schedule deposes the
// leader, which shows the test can tell the difference.
func TestPreVotePartitionedNodeRejoiningDoesNotDisruptLeader(t *testing.T) {
	run := func(preVote bool) (term3, leaderTerm Term, leader NodeID) {
		c := newCluster(3, withOptions(preVote, false))
		c.campaign(1)
		c.isolate(3)
		c.propose(1, "a")
		for i := 0; i < 50; i++ {
			c.tick(3, 1)
			c.stabilize()
		}
		term3 = c.nodes[3].r.term
		c.heal()
		for i := 0; i < 5; i++ {
			c.tickAll(1)
		}
		return term3, c.nodes[1].r.term, c.leader()
	}
	term3, leaderTerm, leader := run(true)
	if term3 != 1 {
		t.Fatalf("PreVote: partitioned node's term: got %d, want 1 (unchanged)", term3)
	}
	if leader != 1 || leaderTerm != 1 {
		t.Fatalf("PreVote: after rejoining got leader %d in term %d, want 1 in term 1", leader, leaderTerm)
	}
	term3, _, leader = run(false)
	if term3 == 1 || leader == 1 {
		t.Fatalf("without PreVote: got partitioned term %d, leader %d; want a higher term and a new leader", term3, leader)
	}
}

// TestPreVoteDoesNotChangeTermOrVote (§9.6): a pre-vote request and its
// grant change neither the voter's term nor its vote.
func TestPreVoteDoesNotChangeTermOrVote(t *testing.T) {
	c := newCluster(3, withOptions(true, false))
	n := c.nodes[2]
	if err := n.Step(Message{Type: MsgPreVote, From: 1, To: 2, Term: 1, Index: 0, LogTerm: 0}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	resp := findMsg(rd.SendAfterPersist, MsgPreVoteResp)
	if resp == nil || resp.Reject || resp.Term != 1 {
		t.Fatalf("pre-vote response: got %v, want a grant for term 1", rd.SendAfterPersist)
	}
	if st := n.Status(); st.Term != 0 || st.Vote != None {
		t.Fatalf("after a pre-vote: got term %d vote %d, want term 0 vote 0", st.Term, st.Vote)
	}
}

// TestCheckQuorumLeaderStepsDown (§6.2): a leader that hears from no quorum
// for an election timeout steps down; without CheckQuorum it stays leader.
func TestCheckQuorumLeaderStepsDown(t *testing.T) {
	for _, checkQuorum := range []bool{true, false} {
		c := newCluster(3, withOptions(false, checkQuorum))
		c.campaign(1)
		c.isolate(1)
		for i := 0; i < 2*10+1; i++ {
			c.tick(1, 1)
			c.stabilize()
		}
		got := c.nodes[1].r.role
		want := RoleLeader
		if checkQuorum {
			want = RoleFollower
		}
		if got != want {
			t.Fatalf("CheckQuorum=%v: isolated leader's role: got %s, want %s", checkQuorum, got, want)
		}
	}
}

// TestCheckQuorumLeaderWithQuorumStays (§6.2): a leader hearing from a
// quorum (one follower of two) keeps leading.
func TestCheckQuorumLeaderWithQuorumStays(t *testing.T) {
	c := newCluster(3, withOptions(false, true))
	c.campaign(1)
	c.isolate(3)
	c.tickAll(50)
	if got := c.leader(); got != 1 || c.nodes[1].r.term != 1 {
		t.Fatalf("got leader %d in term %d, want 1 in term 1", got, c.nodes[1].r.term)
	}
}

// TestVotesIgnoredWithinLeaderLease (§4.2.3): a follower that heard from its
// leader less than an election timeout ago ignores a vote request of a
// higher term (no answer, no term change); once the lease has run out it
// answers.
func TestVotesIgnoredWithinLeaderLease(t *testing.T) {
	c := newCluster(3, withOptions(false, true))
	c.campaign(1)
	c.propose(1, "a")
	vote := Message{Type: MsgVote, From: 3, To: 2, Term: 5, Index: 2, LogTerm: 1}
	n := c.nodes[2]
	if err := n.Step(vote); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.Term != 1 || n.HasReady() {
		t.Fatalf("within the lease: got term %d, HasReady %v; want term 1 and nothing to do", st.Term, n.HasReady())
	}
	// The leader is ignored too: its lease is its own election timeout.
	vote.To = 1
	if err := c.nodes[1].Step(vote); err != nil {
		t.Fatal(err)
	}
	if r := c.nodes[1].r; r.role != RoleLeader || r.term != 1 {
		t.Fatalf("leader after a vote request within its lease: got %s term %d, want Leader term 1", r.role, r.term)
	}
	// A request carrying the transfer marker bypasses the lease (§3.10).
	c.stabilize()
	forced := Message{Type: MsgVote, From: 3, To: 2, Term: 5, Index: 2, LogTerm: 1, Context: campaignTransfer}
	if err := n.Step(forced); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.Term != 5 || st.Vote != 3 {
		t.Fatalf("transfer vote within the lease: got term %d vote %d, want term 5 vote 3", st.Term, st.Vote)
	}
}

// TestVotesAnsweredAfterLeaderLease (§4.2.3): the other side of the lease.
func TestVotesAnsweredAfterLeaderLease(t *testing.T) {
	c := newCluster(3, withOptions(false, true))
	c.campaign(1)
	c.isolate(1)
	c.tick(2, 10)
	c.stabilize()
	n := c.nodes[2]
	if err := n.Step(Message{Type: MsgVote, From: 3, To: 2, Term: 5, Index: 1, LogTerm: 1}); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.Term != 5 || st.Vote != 3 {
		t.Fatalf("after the lease: got term %d vote %d, want term 5 vote 3", st.Term, st.Vote)
	}
}

// TestReadIndexOnLeader (§6.4): the leader records its commit index, confirms
// its leadership with a heartbeat round acknowledged by a quorum, then
// answers; while no quorum answers, there is no answer.
func TestReadIndexOnLeader(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.propose(1, "a")
	c.isolate(1)
	if err := c.nodes[1].ReadIndex([]byte("r1")); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if len(c.reads[1]) != 0 {
		t.Fatalf("read answered without a quorum: got %v, want none", c.reads[1])
	}
	c.heal()
	if err := c.nodes[1].ReadIndex([]byte("r2")); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	// The round for r2 is acknowledged by heartbeats sent after r1 arrived,
	// so it confirms the leadership for r1 as well: both are answered, in
	// order, at the commit index each saw.
	got := c.reads[1]
	if len(got) != 2 || string(got[0].RequestCtx) != "r1" || string(got[1].RequestCtx) != "r2" || got[0].Index != 2 || got[1].Index != 2 {
		t.Fatalf("read states: got %+v, want r1 then r2, both at index 2", got)
	}
}

// TestReadIndexWaitsForCurrentTermCommit (§6.4 step 1): a new leader does not
// know the latest commit index until it has committed an entry of its term,
// so a read waits for that.
func TestReadIndexWaitsForCurrentTermCommit(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.propose(1, "a")
	c.nodes[2].Campaign()
	c.process(2)
	c.deliver() // vote requests
	c.process(1)
	c.process(3)
	c.deliver() // grants: 2 is leader; its no-op is not committed
	if c.nodes[2].r.role != RoleLeader {
		t.Fatalf("got node 2 %s, want Leader", c.nodes[2].r.role)
	}
	if err := c.nodes[2].ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	if len(c.nodes[2].r.pendingReads) != 1 {
		t.Fatalf("pending reads before the first commit of the term: got %d, want 1", len(c.nodes[2].r.pendingReads))
	}
	c.stabilize()
	got := c.reads[2]
	if len(got) != 1 || got[0].Index != 3 {
		t.Fatalf("read states: got %+v, want one at index 3 (the new term's no-op)", got)
	}
}

// TestReadIndexViaFollower (§6.4): a follower forwards the request; the
// leader confirms leadership and returns its commit index, which the
// follower serves once it has applied that far.
func TestReadIndexViaFollower(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.propose(1, "a")
	if err := c.nodes[2].ReadIndex([]byte("f")); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	got := c.reads[2]
	if len(got) != 1 || string(got[0].RequestCtx) != "f" || got[0].Index != 2 {
		t.Fatalf("follower read states: got %+v, want f at index 2", got)
	}
	// Without a leader the follower refuses.
	c2 := newCluster(3, nil)
	if err := c2.nodes[2].ReadIndex([]byte("x")); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("read on a follower without a leader: got %v, want ErrProposalDropped", err)
	}
}

// TestLeaseReadNeedsNoRoundTrip (§6.4.1): with ReadOnlyLeaseBased the leader
// answers at once from its lease, without a heartbeat round, once a round
// of its term was acknowledged.
func TestLeaseReadNeedsNoRoundTrip(t *testing.T) {
	c := newCluster(3, func(cfg *Config) {
		cfg.CheckQuorum = true
		cfg.ReadOnly = ReadOnlyLeaseBased
	})
	c.campaign(1)
	c.propose(1, "a")
	c.tickAll(1) // a heartbeat round, acknowledged: the lease
	c.isolate(1)
	if err := c.nodes[1].ReadIndex([]byte("l")); err != nil {
		t.Fatal(err)
	}
	rd := c.nodes[1].Ready()
	if len(rd.ReadStates) != 1 || rd.ReadStates[0].Index != 2 {
		t.Fatalf("lease read: got %+v, want one read state at index 2 in the next Ready", rd.ReadStates)
	}
	if m := findMsg(rd.SendNow, MsgHeartbeat); m != nil {
		t.Fatalf("lease read sent %s, want no heartbeat round", describeMessage(*m))
	}
	c.nodes[1].Advance(rd)
	// A follower's lease read is answered by the leader at once too.
	c.heal()
	if err := c.nodes[3].ReadIndex([]byte("f")); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if got := c.reads[3]; len(got) != 1 || got[0].Index != 2 {
		t.Fatalf("follower lease read: got %+v, want index 2", got)
	}
}

// TestLeadershipTransferToUpToDateFollower (§3.10): the leader sends
// TimeoutNow to a caught-up target, which campaigns at once in the next term
// and wins.
func TestLeadershipTransferToUpToDateFollower(t *testing.T) {
	c := newCluster(3, withOptions(true, true))
	c.campaign(1)
	c.propose(1, "a")
	if err := c.nodes[1].TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if got := c.leader(); got != 3 || c.nodes[3].r.term != 2 {
		t.Fatalf("after transfer: got leader %d in term %d, want 3 in term 2", got, c.nodes[3].r.term)
	}
	if r := c.nodes[1].r; r.role != RoleFollower || r.lead != 3 {
		t.Fatalf("old leader: got %s following %d, want Follower following 3", r.role, r.lead)
	}
	// Requested through a follower: forwarded to the leader.
	if err := c.nodes[2].TransferLeadership(1); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if got := c.leader(); got != 1 {
		t.Fatalf("after a transfer requested on a follower: got leader %d, want 1", got)
	}
}

// TestLeadershipTransferToLaggingFollower (§3.10): the leader first brings
// the target's log up to date, refusing proposals meanwhile, and only then
// sends TimeoutNow.
func TestLeadershipTransferToLaggingFollower(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.isolate(3)
	for _, d := range []string{"a", "b", "c"} {
		c.propose(1, d)
	}
	c.heal()
	var order []string
	c.onReady = func(id NodeID, rd Ready) {
		for _, m := range slices.Concat(rd.SendNow, rd.SendAfterPersist) {
			if m.To == 3 && (m.Type == MsgApp || m.Type == MsgTimeoutNow) {
				order = append(order, describeMessage(m))
			}
		}
	}
	if err := c.nodes[1].TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].Propose([]byte("during")); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal during a transfer: got %v, want ErrProposalDropped", err)
	}
	c.stabilize()
	if got := c.leader(); got != 3 {
		t.Fatalf("after transfer: got leader %d, want 3", got)
	}
	if len(order) < 2 || !strings.Contains(order[len(order)-1], "MsgTimeoutNow") || !strings.Contains(order[0], "MsgApp") {
		t.Fatalf("messages to the target: got %q, want appends first and TimeoutNow last", order)
	}
	if got := c.appliedData(3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("new leader applied %q, want [a b c]", got)
	}
}

// TestLeadershipTransferAbortsAfterElectionTimeout (§3.10: "if the transfer
// does not complete within an election timeout, the leader aborts it and
// resumes accepting client requests").
func TestLeadershipTransferAbortsAfterElectionTimeout(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.isolate(3)
	c.propose(1, "a")
	if err := c.nodes[1].TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if got := c.nodes[1].Status().LeadTransferee; got != 3 {
		t.Fatalf("transferee: got %d, want 3", got)
	}
	for i := 0; i < 9; i++ {
		c.tick(1, 1)
		c.stabilize()
	}
	if err := c.nodes[1].Propose([]byte("x")); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal before the election timeout: got %v, want ErrProposalDropped", err)
	}
	c.tick(1, 1)
	c.stabilize()
	if got := c.nodes[1].Status().LeadTransferee; got != None {
		t.Fatalf("transferee after an election timeout: got %d, want none", got)
	}
	if err := c.propose(1, "b"); err != nil {
		t.Fatalf("proposal after the transfer was aborted: got %v, want nil", err)
	}
	if got := c.leader(); got != 1 || c.nodes[1].r.term != 1 {
		t.Fatalf("got leader %d term %d, want 1 term 1", got, c.nodes[1].r.term)
	}
}

// TestLeadershipTransferIgnoresBadTargets (§3.10): transferring to itself,
// to an unknown node or while none is leader changes nothing.
func TestLeadershipTransferIgnoresBadTargets(t *testing.T) {
	c := newCluster(3, nil)
	if err := c.nodes[2].TransferLeadership(1); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("transfer without a leader: got %v, want ErrProposalDropped", err)
	}
	c.campaign(1)
	for _, to := range []NodeID{1, 9} {
		if err := c.nodes[1].TransferLeadership(to); err != nil {
			t.Fatal(err)
		}
		if got := c.nodes[1].Status().LeadTransferee; got != None {
			t.Fatalf("transfer to %d: got transferee %d, want none", to, got)
		}
	}
}

// TestSnapshotCatchUpOfFollowerBehindCompaction (§7): the leader compacted
// the entries a returning follower needs, so it sends its snapshot; the
// follower installs it, then receives the entries after it, and ends with
// the leader's log.
func TestSnapshotCatchUpOfFollowerBehindCompaction(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.isolate(3)
	for _, d := range []string{"a", "b", "c", "d"} {
		c.propose(1, d)
	}
	applied := c.nodes[1].Status().Applied
	if err := c.compact(1, applied); err != nil {
		t.Fatal(err)
	}
	c.propose(1, "e")
	var snaps int
	c.onReady = func(id NodeID, rd Ready) {
		for _, m := range slices.Concat(rd.SendNow, rd.SendAfterPersist) {
			if m.Type == MsgSnap && m.To == 3 {
				snaps++
			}
		}
	}
	c.heal()
	c.tickAll(3)
	if snaps != 1 {
		t.Fatalf("snapshots sent to 3: got %d, want 1", snaps)
	}
	st := c.nodes[3].Status()
	if st.FirstIndex != applied+1 || st.LastIndex != c.nodes[1].Status().LastIndex || st.Applied != st.LastIndex {
		t.Fatalf("follower after catch-up: got %s, want first %d and last = applied = leader's last", describeNode(c.nodes[3]), applied+1)
	}
	if got := c.appliedData(3); !slices.Equal(got, []string{"<snapshot>", "e"}) {
		t.Fatalf("follower applied %q, want the snapshot then e", got)
	}
	if pr := c.nodes[1].Status().Progress[3]; pr.State != StateReplicate || pr.Match != st.LastIndex {
		t.Fatalf("leader's progress of 3: got %s, want StateReplicate match=%d", pr.String(), st.LastIndex)
	}
	if got, want := string(c.storage[3].snap.Data), fmt.Sprintf("snap@%d", applied); got != want {
		t.Fatalf("follower's stored snapshot: got %q, want %q", got, want)
	}
}

// TestSnapshotFailureReportedThenRetried (§7): a snapshot the transport
// could not deliver is reported; the leader probes again and resends.
func TestSnapshotFailureReportedThenRetried(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.isolate(3)
	c.propose(1, "a")
	c.propose(1, "b")
	if err := c.compact(1, 3); err != nil {
		t.Fatal(err)
	}
	c.heal()
	c.dropTypes[MsgSnap] = true
	c.tickAll(3)
	if pr := c.nodes[1].Status().Progress[3]; pr.State != StateProbe {
		t.Fatalf("after a failed snapshot: got %s, want StateProbe", pr.String())
	}
	delete(c.dropTypes, MsgSnap)
	c.tickAll(3)
	if got := c.appliedData(3); !slices.Equal(got, []string{"<snapshot>"}) {
		t.Fatalf("follower applied %q, want the snapshot", got)
	}
}

// TestFlowControlInflightWindowBoundedByCount: in StateReplicate the leader
// streams at most MaxInflightMsgs unacknowledged appends to a follower.
func TestFlowControlInflightWindowBoundedByCount(t *testing.T) {
	c := newCluster(3, func(cfg *Config) { cfg.MaxInflightMsgs = 3 })
	c.campaign(1)
	c.propose(1, "warm")
	// Acknowledgments from 2 are lost from now on.
	c.cutLink(2, 1)
	sent := countAppendsTo(c, 2)
	for i := 0; i < 10; i++ {
		if err := c.nodes[1].Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.stabilize()
	}
	if *sent != 3 {
		t.Fatalf("appends to 2 without acknowledgments: got %d, want 3 (MaxInflightMsgs)", *sent)
	}
	if pr := c.nodes[1].Status().Progress[2]; pr.State != StateReplicate {
		t.Fatalf("got %s, want StateReplicate", pr.String())
	}
	// Once acknowledgments flow again the window drains and the rest goes.
	c.heal()
	c.tickAll(2)
	if got, want := c.nodes[2].Status().LastIndex, c.nodes[1].Status().LastIndex; got != want {
		t.Fatalf("follower last index after healing: got %d, want %d", got, want)
	}
}

// TestFlowControlInflightWindowBoundedByBytes: the window also closes once
// MaxInflightBytes of entries are unacknowledged.
func TestFlowControlInflightWindowBoundedByBytes(t *testing.T) {
	c := newCluster(3, func(cfg *Config) {
		cfg.MaxInflightMsgs = 100
		cfg.MaxBytesPerMsg = 1000
		cfg.MaxInflightBytes = 1000
	})
	c.campaign(1)
	c.propose(1, "warm")
	c.cutLink(2, 1)
	sent := countAppendsTo(c, 2)
	payload := bytes.Repeat([]byte("p"), 300-entryOverhead) // 300 bytes charged
	for i := 0; i < 10; i++ {
		if err := c.nodes[1].Propose(payload); err != nil {
			t.Fatal(err)
		}
		c.stabilize()
	}
	// 300, 600, 900 are below the limit; the fourth append reaches 1200.
	if *sent != 4 {
		t.Fatalf("appends of 300 bytes to 2 without acknowledgments: got %d, want 4 (until 1000 bytes are in flight)", *sent)
	}
}

// TestFlowControlProbeSendsOneAtATime: in StateProbe the leader sends one
// append and waits for its answer (or a heartbeat answer) before the next.
func TestFlowControlProbeSendsOneAtATime(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.propose(1, "warm")
	c.nodes[1].ReportUnreachable(2)
	if pr := c.nodes[1].Status().Progress[2]; pr.State != StateProbe {
		t.Fatalf("after ReportUnreachable: got %s, want StateProbe", pr.String())
	}
	c.cutLink(2, 1)
	sent := countAppendsTo(c, 2)
	for i := 0; i < 5; i++ {
		if err := c.nodes[1].Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.stabilize()
	}
	if *sent != 1 {
		t.Fatalf("appends to a probing follower without answers: got %d, want 1", *sent)
	}
	// A heartbeat (answered, but the answer is lost) does not unblock it;
	// an answered heartbeat does.
	c.tickAll(1)
	if *sent != 1 {
		t.Fatalf("appends after an unanswered heartbeat: got %d, want 1", *sent)
	}
	c.heal()
	c.tickAll(1)
	if got, want := c.nodes[2].Status().LastIndex, c.nodes[1].Status().LastIndex; got != want {
		t.Fatalf("follower last index: got %d, want %d", got, want)
	}
}

func countAppendsTo(c *cluster, to NodeID) *int {
	n := new(int)
	c.onReady = func(id NodeID, rd Ready) {
		for _, m := range slices.Concat(rd.SendNow, rd.SendAfterPersist) {
			if m.Type == MsgApp && m.To == to && len(m.Entries) > 0 {
				*n++
			}
		}
	}
	return n
}

// TestMaxUncommittedBytesDropsProposals: a leader stops accepting proposals
// once MaxUncommittedBytes of payload wait to commit, and accepts them again
// once they commit. One proposal is always accepted, however large.
func TestMaxUncommittedBytesDropsProposals(t *testing.T) {
	c := newCluster(3, func(cfg *Config) { cfg.MaxUncommittedBytes = 100 })
	c.campaign(1)
	c.isolate(1)
	big := bytes.Repeat([]byte("b"), 150)
	if err := c.propose(1, string(big)); err != nil {
		t.Fatalf("first proposal, above the limit: got %v, want accepted", err)
	}
	if err := c.propose(1, "x"); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal past MaxUncommittedBytes: got %v, want ErrProposalDropped", err)
	}
	c.heal()
	c.tickAll(2)
	forty := string(bytes.Repeat([]byte("f"), 40))
	for i := 0; i < 2; i++ {
		if err := c.nodes[1].Propose([]byte(forty)); err != nil {
			t.Fatalf("proposal %d after the backlog committed: got %v, want nil", i, err)
		}
	}
	if err := c.nodes[1].Propose([]byte(forty)); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("third 40-byte proposal (120 > 100): got %v, want ErrProposalDropped", err)
	}
}

// TestMaxEntryBytesRejectsLargeEntry: a proposal with a payload above
// MaxEntryBytes is refused with ErrEntryTooLarge and appends nothing.
func TestMaxEntryBytesRejectsLargeEntry(t *testing.T) {
	c := newCluster(1, func(cfg *Config) { cfg.MaxEntryBytes = 10 })
	c.campaign(1)
	last := c.nodes[1].Status().LastIndex
	err := c.nodes[1].Propose([]byte("0123456789"), []byte("0123456789a"))
	if !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("11-byte entry with MaxEntryBytes 10: got %v, want ErrEntryTooLarge", err)
	}
	if got := c.nodes[1].Status().LastIndex; got != last {
		t.Fatalf("last index after the refusal: got %d, want %d", got, last)
	}
	if err := c.propose(1, "0123456789"); err != nil {
		t.Fatalf("10-byte entry: got %v, want nil", err)
	}
}

// TestRestartFromStorage (Figure 2, persistent state): a restarted node
// comes back with its durable term, vote, commit index and membership, and
// does not re-apply what its state machine already holds.
func TestRestartFromStorage(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	c.propose(1, "a")
	c.propose(1, "b")
	c.tickAll(1)
	before := c.storage[2].HardState()
	for _, id := range c.ids {
		c.restart(id)
	}
	n := c.nodes[2]
	st := n.Status()
	if st.HardState != before {
		t.Fatalf("restarted hard state: got %+v, want %+v", st.HardState, before)
	}
	if st.Role != RoleFollower || st.Lead != None {
		t.Fatalf("restarted role: got %s lead %d, want Follower without leader", st.Role, st.Lead)
	}
	if !slices.Equal(st.Config.Voters, []NodeID{1, 2, 3}) {
		t.Fatalf("restarted voters: got %v, want [1 2 3]", st.Config.Voters)
	}
	if st.Applied != 3 {
		t.Fatalf("restarted applied: got %d, want 3 (from Config.Applied)", st.Applied)
	}
	c.campaign(2)
	c.propose(2, "c")
	if got := c.appliedData(2); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("applied after restart: got %q, want [a b c] (nothing twice)", got)
	}
	if got := c.nodes[2].r.term; got != 2 {
		t.Fatalf("term after re-election: got %d, want 2", got)
	}
}

// TestRestartFromSnapshot: a node whose storage was compacted restarts with
// the snapshot's membership and index as its commit and applied floor.
func TestRestartFromSnapshot(t *testing.T) {
	ms := NewMemoryStorage()
	snap := Snapshot{Meta: SnapshotMeta{Index: 10, Term: 3, ConfState: ConfState{Voters: []NodeID{1, 2, 3}, Learners: []NodeID{4}}}}
	if err := ms.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if err := ms.Append([]Entry{{Index: 11, Term: 3}, {Index: 12, Term: 4}}); err != nil {
		t.Fatal(err)
	}
	ms.SetHardState(HardState{Term: 4, Vote: 2, Commit: 11})
	n, err := NewNode(Config{ID: 1, Storage: ms})
	if err != nil {
		t.Fatal(err)
	}
	st := n.Status()
	if st.Commit != 11 || st.Applied != 10 || st.FirstIndex != 11 || st.LastIndex != 12 || st.Term != 4 || st.Vote != 2 {
		t.Fatalf("got %s, want term 4 vote 2 commit 11 applied 10 first 11 last 12", describeNode(n))
	}
	if !slices.Equal(st.Config.Learners, []NodeID{4}) {
		t.Fatalf("learners: got %v, want [4]", st.Config.Learners)
	}
	rd := n.Ready()
	if got := describeEntries(rd.CommittedEntries); got != "[11/3]" {
		t.Fatalf("committed entries after restart: got %s, want [11/3]", got)
	}
	n.Advance(rd)
}

// TestRestartAfterCrashBetweenSnapshotAndHardState (doc.go: the snapshot is
// made durable before the hard state): a crash in between leaves a durable
// commit index below the snapshot's index. The node must start, with the
// snapshot's index as its commit index. (FuzzCluster found this too; its
// input is kept in testdata/fuzz.)
func TestRestartAfterCrashBetweenSnapshotAndHardState(t *testing.T) {
	ms := NewMemoryStorage()
	ms.SetHardState(HardState{Term: 2, Vote: 1, Commit: 3})
	if err := ms.ApplySnapshot(Snapshot{Meta: SnapshotMeta{Index: 9, Term: 4, ConfState: ConfState{Voters: []NodeID{1, 2, 3}}}}); err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(Config{ID: 1, Storage: ms})
	if err != nil {
		t.Fatalf("got %v, want the node to start", err)
	}
	if st := n.Status(); st.Commit != 9 || st.Applied != 9 || st.Term != 2 || st.Vote != 1 {
		t.Fatalf("got %s, want commit and applied 9, term 2 vote 1", describeNode(n))
	}
}

// TestNewNodeRefusesBadStorage: storage without membership, or whose hard
// state commit lies outside its log, or an applied index past the commit,
// is refused.
func TestNewNodeRefusesBadStorage(t *testing.T) {
	ms := NewMemoryStorage()
	if _, err := NewNode(Config{ID: 1, Storage: ms}); err == nil || !strings.Contains(err.Error(), "membership") {
		t.Fatalf("storage without ConfState: got %v, want an error about membership", err)
	}
	ms.SetConfState(ConfState{Voters: []NodeID{1}})
	ms.SetHardState(HardState{Term: 1, Commit: 5})
	if _, err := NewNode(Config{ID: 1, Storage: ms}); err == nil || !strings.Contains(err.Error(), "past the last index") {
		t.Fatalf("commit past the log: got %v, want an error", err)
	}
	ms.SetHardState(HardState{Term: 1})
	if _, err := NewNode(Config{ID: 1, Storage: ms, Applied: 3}); err == nil || !strings.Contains(err.Error(), "past the commit") {
		t.Fatalf("applied past commit: got %v, want an error", err)
	}
}

// TestCheckQuorumNotPostponedByTransferRequests (§6.2, §3.10): leadership
// transfer requests must not restart the CheckQuorum clock. A cut-off
// leader asked again and again to transfer (to alternating targets, so that
// each request starts a new transfer) still steps down within two election
// timeouts; otherwise it would keep leading, and with lease reads keep
// answering reads, while the majority elects another leader.
func TestCheckQuorumNotPostponedByTransferRequests(t *testing.T) {
	c := newCluster(3, withOptions(false, true))
	c.campaign(1)
	c.isolate(1)
	for tick := 0; tick < 2*10; tick++ {
		if tick%5 == 0 {
			if err := c.nodes[1].TransferLeadership(NodeID(2 + tick/5%2)); err != nil {
				t.Fatal(err)
			}
		}
		c.tick(1, 1)
		c.stabilize()
	}
	if got := c.nodes[1].r.role; got != RoleFollower {
		t.Fatalf("isolated leader after 2 election timeouts of transfer requests: got %s, want Follower", got)
	}
}

// TestLeaseReadNotServedOnceAnotherLeaderCanExist (§6.4.1: the lease lasts
// an election timeout from the heartbeats a majority acknowledged): a
// cut-off leader keeps its role until its next quorum check fails, up to
// two election timeouts, but the majority may elect a new leader after one.
// In between, the old leader must not answer lease reads from its role
// alone: the new leader may already have committed writes the read would
// miss.
func TestLeaseReadNotServedOnceAnotherLeaderCanExist(t *testing.T) {
	for cut := 1; cut < 10; cut++ {
		c := newCluster(3, func(cfg *Config) {
			cfg.CheckQuorum = true
			cfg.ReadOnly = ReadOnlyLeaseBased
		})
		c.campaign(1)
		c.propose(1, "a")
		c.tickAll(cut)
		c.isolate(1)
		for i := 0; i < 40 && (c.nodes[2].r.role != RoleLeader && c.nodes[3].r.role != RoleLeader); i++ {
			c.tickAll(1)
		}
		if c.nodes[1].r.role != RoleLeader {
			continue // the old leader already stepped down: no window
		}
		if err := c.nodes[1].ReadIndex([]byte("stale")); err != nil {
			t.Fatal(err)
		}
		c.stabilize()
		if got := c.reads[1]; len(got) != 0 {
			t.Fatalf("cut off %d ticks into the round: old leader answered a lease read (%+v) after node %d was elected, want no answer", cut, got, c.leader())
		}
	}
}

// TestMaxEntryBytesRefusedOnFollower: Config.MaxEntryBytes says a larger
// proposal is refused with ErrEntryTooLarge, on whichever node it is made.
// A follower must not forward it for the leader to drop silently, leaving
// the proposer waiting for an entry that never commits.
func TestMaxEntryBytesRefusedOnFollower(t *testing.T) {
	c := newCluster(3, func(cfg *Config) { cfg.MaxEntryBytes = 10 })
	c.campaign(1)
	if err := c.nodes[2].Propose([]byte("0123456789a")); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("11-byte proposal on a follower with MaxEntryBytes 10: got %v, want ErrEntryTooLarge", err)
	}
	if c.nodes[2].HasReady() {
		t.Fatalf("the refused proposal was forwarded")
	}
}

// TestSnapshotCoveredByLogIsNotInstalled (§7: "if the follower receives a
// snapshot that describes a prefix of its log, log entries covered by the
// snapshot are deleted but entries following the snapshot are still valid
// and must be retained"): a follower that holds the snapshot's last entry
// keeps its log and just commits up to it; a snapshot behind its commit
// index changes nothing. Either way it answers with its commit index.
func TestSnapshotCoveredByLogIsNotInstalled(t *testing.T) {
	c := newClusterWithLogs([][]Term{{1, 1, 1, 1}, {1, 1, 1, 1}, {1}}, 1, 1, nil)
	n := c.nodes[2]
	snap := func(i Index) Message {
		return Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &Snapshot{Meta: SnapshotMeta{Index: i, Term: 1, ConfState: ConfState{Voters: []NodeID{1, 2, 3}}}}}
	}
	if err := n.Step(snap(3)); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if rd.Snapshot != nil || rd.HardState.Commit != 3 {
		t.Fatalf("snapshot 3/1 over a log holding 3/1: got snapshot %v, commit %d; want no snapshot, commit 3", rd.Snapshot, rd.HardState.Commit)
	}
	if ack := findMsg(rd.SendAfterPersist, MsgAppResp); ack == nil || ack.Index != 3 {
		t.Fatalf("answer: got %v, want an acknowledgment of 3", rd.SendAfterPersist)
	}
	if st := n.Status(); st.LastIndex != 4 {
		t.Fatalf("last index: got %d, want 4 (entries after the snapshot kept)", st.LastIndex)
	}
	c.persist(2, rd)
	n.Advance(rd)
	if err := n.Step(snap(2)); err != nil {
		t.Fatal(err)
	}
	rd = n.Ready()
	if rd.Snapshot != nil {
		t.Fatalf("snapshot behind the commit index: got it installed")
	}
	if ack := findMsg(rd.SendAfterPersist, MsgAppResp); ack == nil || ack.Index != 3 {
		t.Fatalf("answer to an old snapshot: got %v, want an acknowledgment of the commit index 3", rd.SendAfterPersist)
	}
	n.Advance(rd)
}

// withLease is a 3-node configuration with lease reads.
func withLease(cfg *Config) {
	cfg.CheckQuorum = true
	cfg.ReadOnly = ReadOnlyLeaseBased
}

// TestRestartedNodeHoldsItsVoteForAnElectionTimeout: a follower that
// acknowledged the leader's heartbeat and restarted at once must still
// ignore vote requests for an election timeout, or a candidate could win
// with its vote while the leader's lease, which counted on it, runs.
func TestRestartedNodeHoldsItsVoteForAnElectionTimeout(t *testing.T) {
	c := newCluster(3, withLease)
	c.campaign(1)
	c.propose(1, "a")
	c.tickAll(1)
	if !c.nodes[1].r.leaseValid() {
		t.Fatal("no lease after an acknowledged heartbeat round")
	}
	c.restart(2)
	c.isolate(1)
	c.nodes[3].Campaign()
	c.stabilize()
	if r := c.nodes[3].r; r.role == RoleLeader {
		t.Fatalf("node 3 won term %d with the vote of node 2, restarted inside node 1's lease", r.term)
	}
	if !c.nodes[1].r.leaseValid() {
		t.Fatal("node 1 lost its lease without time passing")
	}
	// An election timeout later node 2 votes again.
	c.tick(2, 10)
	if c.nodes[2].r.role == RoleFollower {
		c.nodes[3].Campaign()
	}
	c.stabilize()
	if l := c.nodes[2].r.lead; l == None || l == 1 {
		t.Fatalf("after node 2's hold: its leader is %d, want a new one", l)
	}
}

// TestTransferEndsTheLeaseForTheTerm: once a leader sent TimeoutNow, the
// target's forced vote requests bypass the followers' leases whenever the
// message arrives, so the leader answers no more reads from its lease in
// that term, even after the transfer was abandoned.
func TestTransferEndsTheLeaseForTheTerm(t *testing.T) {
	c := newCluster(3, withLease)
	c.campaign(1)
	c.propose(1, "a")
	c.tickAll(1)
	c.dropTypes[MsgTimeoutNow] = true // delayed, as far as anyone knows
	if err := c.nodes[1].TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	c.tickAll(10) // the transfer is abandoned after an election timeout
	if r := c.nodes[1].r; r.role != RoleLeader || r.leadTransferee != None {
		t.Fatalf("node 1: %s, transferring to %d; want a leader with the transfer abandoned", r.role, r.leadTransferee)
	}
	if err := c.nodes[1].ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	rd := c.nodes[1].Ready()
	if len(rd.ReadStates) != 0 {
		t.Fatalf("read answered from the lease after a transfer: %+v", rd.ReadStates)
	}
	if findMsg(rd.SendNow, MsgHeartbeat) == nil {
		t.Fatal("the read started no heartbeat round")
	}
	c.nodes[1].Advance(rd)
}
