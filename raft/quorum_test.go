package raft

import (
	"fmt"
	"testing"
)

// matchOf returns a match function over a table of indexes; nodes missing
// from it have matched nothing.
func matchOf(m map[NodeID]Index) func(NodeID) (Index, bool) {
	return func(id NodeID) (Index, bool) {
		i, ok := m[id]
		return i, ok
	}
}

// TestMajorityCommittedIndex (§5.3 "a log entry is committed once the leader
// that created the entry has replicated it on a majority"): the committed
// index is the largest index matched by a majority.
func TestMajorityCommittedIndex(t *testing.T) {
	tests := []struct {
		voters []NodeID
		match  map[NodeID]Index
		want   Index
	}{
		{nil, nil, ^Index(0)}, // empty: neutral in a joint configuration
		{[]NodeID{1}, map[NodeID]Index{1: 5}, 5},
		{[]NodeID{1}, nil, 0},
		{[]NodeID{1, 2}, map[NodeID]Index{1: 5, 2: 3}, 3},
		{[]NodeID{1, 2, 3}, map[NodeID]Index{1: 5, 2: 3, 3: 1}, 3},
		{[]NodeID{1, 2, 3}, map[NodeID]Index{1: 5, 2: 5}, 5},
		{[]NodeID{1, 2, 3}, map[NodeID]Index{1: 5}, 0},
		{[]NodeID{1, 2, 3, 4}, map[NodeID]Index{1: 9, 2: 8, 3: 2, 4: 1}, 2},
		{[]NodeID{1, 2, 3, 4, 5}, map[NodeID]Index{1: 9, 2: 8, 3: 7, 4: 1, 5: 1}, 7},
		{[]NodeID{1, 2, 3, 4, 5}, map[NodeID]Index{1: 9, 2: 8, 3: 0, 4: 1, 5: 1}, 1},
		// Duplicates in the input are ignored.
		{[]NodeID{3, 1, 2, 1, 3}, map[NodeID]Index{1: 5, 2: 3, 3: 1}, 3},
		// More voters than the stack buffer.
		{[]NodeID{1, 2, 3, 4, 5, 6, 7, 8, 9}, map[NodeID]Index{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9}, 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v %v", tt.voters, tt.match), func(t *testing.T) {
			if got := newMajorityConfig(tt.voters).committedIndex(matchOf(tt.match)); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestMajorityVoteResult (§5.2 "a candidate wins if it receives votes from
// a majority"): won with a majority of grants, lost once a majority is out
// of reach, pending otherwise.
func TestMajorityVoteResult(t *testing.T) {
	y, n := true, false
	tests := []struct {
		voters []NodeID
		votes  map[NodeID]bool
		want   VoteResult
	}{
		{nil, nil, VoteWon},
		{[]NodeID{1}, nil, VotePending},
		{[]NodeID{1}, map[NodeID]bool{1: y}, VoteWon},
		{[]NodeID{1}, map[NodeID]bool{1: n}, VoteLost},
		{[]NodeID{1, 2}, map[NodeID]bool{1: y}, VotePending},
		{[]NodeID{1, 2}, map[NodeID]bool{1: y, 2: n}, VoteLost},
		{[]NodeID{1, 2, 3}, map[NodeID]bool{1: y}, VotePending},
		{[]NodeID{1, 2, 3}, map[NodeID]bool{1: y, 2: n}, VotePending},
		{[]NodeID{1, 2, 3}, map[NodeID]bool{1: y, 2: y}, VoteWon},
		{[]NodeID{1, 2, 3}, map[NodeID]bool{1: n, 2: n}, VoteLost},
		{[]NodeID{1, 2, 3, 4}, map[NodeID]bool{1: y, 2: y, 3: n}, VotePending},
		{[]NodeID{1, 2, 3, 4}, map[NodeID]bool{1: y, 2: n, 3: n}, VoteLost},
		{[]NodeID{1, 2, 3, 4, 5}, map[NodeID]bool{1: y, 2: y, 3: y}, VoteWon},
		// Votes of non-members do not count.
		{[]NodeID{1, 2, 3}, map[NodeID]bool{1: y, 7: y, 8: y}, VotePending},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v %v", tt.voters, tt.votes), func(t *testing.T) {
			if got := newMajorityConfig(tt.voters).voteResult(tt.votes); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestJointConfig (§4.3 "agreement requires separate majorities from both
// the old and new configurations"): committedIndex is the smaller of the
// halves' and a vote is won only if both halves win, lost if either loses.
func TestJointConfig(t *testing.T) {
	y, n := true, false
	tests := []struct {
		in, out   []NodeID
		match     map[NodeID]Index
		votes     map[NodeID]bool
		committed Index
		result    VoteResult
	}{
		// Not joint: the incoming majority decides.
		{[]NodeID{1, 2, 3}, nil, map[NodeID]Index{1: 5, 2: 4, 3: 1}, map[NodeID]bool{1: y, 2: y}, 4, VoteWon},
		// Overlapping halves.
		{[]NodeID{1, 2, 3}, []NodeID{2, 3, 4}, map[NodeID]Index{1: 9, 2: 9, 3: 2, 4: 1}, map[NodeID]bool{1: y, 2: y}, 2, VotePending},
		{[]NodeID{1, 2, 3}, []NodeID{2, 3, 4}, map[NodeID]Index{1: 9, 2: 9, 3: 8, 4: 1}, map[NodeID]bool{1: y, 2: y, 3: y}, 8, VoteWon},
		{[]NodeID{1, 2, 3}, []NodeID{2, 3, 4}, nil, map[NodeID]bool{3: n, 4: n}, 0, VoteLost},
		// Disjoint halves: a majority of the new alone is not enough.
		{[]NodeID{1, 2, 3}, []NodeID{4, 5, 6}, map[NodeID]Index{1: 9, 2: 9, 3: 9, 4: 3, 5: 3, 6: 1}, map[NodeID]bool{1: y, 2: y, 3: y}, 3, VotePending},
		{[]NodeID{1, 2, 3}, []NodeID{4, 5, 6}, nil, map[NodeID]bool{1: y, 2: y, 4: n, 5: n}, 0, VoteLost},
		{[]NodeID{1}, []NodeID{2}, map[NodeID]Index{1: 3, 2: 7}, map[NodeID]bool{1: y, 2: y}, 3, VoteWon},
		// One half lost, the other pending: lost.
		{[]NodeID{1}, []NodeID{2, 3, 4}, nil, map[NodeID]bool{1: n}, 0, VoteLost},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v&%v", tt.in, tt.out), func(t *testing.T) {
			j := jointConfig{incoming: newMajorityConfig(tt.in), outgoing: newMajorityConfig(tt.out)}
			if got := j.committedIndex(matchOf(tt.match)); got != tt.committed {
				t.Errorf("committedIndex: got %d, want %d", got, tt.committed)
			}
			if got := j.voteResult(tt.votes); got != tt.result {
				t.Errorf("voteResult: got %s, want %s", got, tt.result)
			}
			for _, id := range append(append([]NodeID{}, tt.in...), tt.out...) {
				if !j.contains(id) {
					t.Errorf("contains(%d): got false, want true", id)
				}
			}
			if j.contains(99) {
				t.Errorf("contains(99): got true, want false")
			}
		})
	}
}

// TestTrackerJointMembership: the tracker counts votes and quorum activity
// over both halves of a joint configuration and treats the rest as learners.
func TestTrackerJointMembership(t *testing.T) {
	trk := newTracker(4, 0)
	cs := ConfState{Voters: []NodeID{1, 2, 3}, VotersOutgoing: []NodeID{1, 4, 5}, Learners: []NodeID{6}, LearnersNext: []NodeID{5}}
	trk.applyConfState(cs, 1)
	got := trk.confState()
	if fmt.Sprint(got) != fmt.Sprint(ConfState{Voters: []NodeID{1, 2, 3}, Learners: []NodeID{6}, VotersOutgoing: []NodeID{1, 4, 5}, LearnersNext: []NodeID{5}}) {
		t.Fatalf("confState: got %+v", got)
	}
	if !trk.progress[6].IsLearner || trk.progress[5].IsLearner {
		t.Fatalf("learner flags: got 6=%v 5=%v, want 6 learner, 5 voter (outgoing)", trk.progress[6].IsLearner, trk.progress[5].IsLearner)
	}
	if trk.isSingleVoter(1) {
		t.Fatalf("isSingleVoter in a joint configuration: got true, want false")
	}
	trk.recordVote(1, true)
	trk.recordVote(2, true)
	trk.recordVote(6, true) // a learner's vote does not count
	if g, r, res := trk.tallyVotes(); g != 2 || r != 0 || res != VotePending {
		t.Fatalf("tally: got %d granted %d rejected %s, want 2 0 VotePending (the outgoing half lacks a majority)", g, r, res)
	}
	trk.recordVote(4, true)
	trk.recordVote(4, false) // only the first vote counts
	if _, _, res := trk.tallyVotes(); res != VoteWon {
		t.Fatalf("tally: got %s, want VoteWon", res)
	}
	trk.progress[2].RecentActive = true
	if trk.quorumActive(1) {
		t.Fatalf("quorumActive with only the incoming half: got true, want false")
	}
	trk.progress[4].RecentActive = true
	if !trk.quorumActive(1) {
		t.Fatalf("quorumActive with both halves: got false, want true")
	}
	// Leaving the joint configuration keeps the progress of members that stay.
	trk.progress[2].Match = 7
	trk.applyConfState(ConfState{Voters: []NodeID{1, 2, 3}, Learners: []NodeID{5}}, 10)
	if trk.progress[2].Match != 7 || trk.progress[4] != nil || !trk.progress[5].IsLearner {
		t.Fatalf("after leaving the joint configuration: got %v", trk.progress)
	}
}

// TestProgressTransitions: probe, replicate and snapshot states and the
// updates that move Match and Next.
func TestProgressTransitions(t *testing.T) {
	pr := &Progress{Match: 1, Next: 5, inflights: newInflights(2, 0)}
	// Probe: one message at a time.
	if pr.isPaused() {
		t.Fatalf("fresh probe: got paused")
	}
	pr.sentEntries(6, 10)
	if !pr.isPaused() || pr.Next != 5 {
		t.Fatalf("probe after a send: got paused=%v next=%d, want paused, next 5", pr.isPaused(), pr.Next)
	}
	// A stale rejection (not of Next-1) changes nothing.
	if pr.maybeDecrTo(2, 1) {
		t.Fatalf("stale rejection in probe: got a change")
	}
	// A rejection of the probe moves Next back to the hint, not below Match.
	if !pr.maybeDecrTo(4, 2) || pr.Next != 3 || pr.isPaused() {
		t.Fatalf("rejection with hint 2: got next %d paused %v, want next 3 unpaused", pr.Next, pr.isPaused())
	}
	if !pr.maybeDecrTo(2, 0) || pr.Next != 2 {
		t.Fatalf("rejection below match: got next %d, want match+1 = 2", pr.Next)
	}
	// Acknowledgment: Match and Next advance; a stale one does nothing.
	if !pr.maybeUpdate(4) || pr.Match != 4 || pr.Next != 5 {
		t.Fatalf("maybeUpdate(4): got match %d next %d, want 4 5", pr.Match, pr.Next)
	}
	if pr.maybeUpdate(3) || pr.Match != 4 {
		t.Fatalf("maybeUpdate(3) after 4: got a change")
	}
	pr.becomeReplicate()
	if pr.State != StateReplicate || pr.Next != 5 {
		t.Fatalf("becomeReplicate: got %s", pr.String())
	}
	pr.sentEntries(7, 10)
	pr.sentEntries(9, 10)
	if pr.Next != 10 || !pr.isPaused() || pr.String() != "StateReplicate match=4 next=10 inflight=2[full]" {
		t.Fatalf("replicate with a full window: got %s", pr.String())
	}
	// In replicate, a rejection at or below Match is stale; above it, Next
	// falls back to Match+1.
	if pr.maybeDecrTo(4, 0) {
		t.Fatalf("stale rejection in replicate: got a change")
	}
	if !pr.maybeDecrTo(7, 0) || pr.Next != 5 {
		t.Fatalf("rejection in replicate: got next %d, want 5", pr.Next)
	}
	pr.becomeSnapshot(20)
	if !pr.isPaused() || pr.String() != "StateSnapshot match=4 next=5 pending_snap=20" {
		t.Fatalf("snapshot: got %s paused=%v", pr.String(), pr.isPaused())
	}
	// Leaving the snapshot state, the follower is known to hold it.
	pr.becomeProbe()
	if pr.Next != 21 || pr.State != StateProbe {
		t.Fatalf("probe after a snapshot: got %s, want next 21", pr.String())
	}
	pr.IsLearner = true
	if got := pr.String(); got != "StateProbe match=4 next=21 learner" {
		t.Fatalf("String: got %q", got)
	}
}

// TestInflights: the window is bounded by count and by bytes, frees in
// order, wraps around its ring, and freeFirstOne frees exactly one.
func TestInflights(t *testing.T) {
	in := newInflights(3, 0)
	for i := Index(1); i <= 3; i++ {
		in.add(i*10, 100)
	}
	if !in.full() || in.bytes != 300 {
		t.Fatalf("after 3 adds: got full=%v bytes=%d, want full with 300", in.full(), in.bytes)
	}
	mustPanic(t, "add to a full window", func() { in.add(40, 1) })
	in.freeLE(15)
	if in.count != 2 || in.full() || in.bytes != 200 {
		t.Fatalf("freeLE(15): got count %d bytes %d, want 2 and 200", in.count, in.bytes)
	}
	// Wrap around the ring.
	in.add(40, 100)
	in.freeLE(30)
	if in.count != 1 || in.idx[in.start] != 40 {
		t.Fatalf("after wrapping: got count %d first %d, want 1 and 40", in.count, in.idx[in.start])
	}
	in.freeFirstOne()
	if in.count != 0 || in.start != 0 || in.bytes != 0 {
		t.Fatalf("freeFirstOne: got count %d start %d bytes %d, want all 0", in.count, in.start, in.bytes)
	}
	in.freeFirstOne() // empty: no-op
	// Byte-bounded.
	b := newInflights(100, 250)
	b.add(1, 100)
	b.add(2, 100)
	if b.full() {
		t.Fatalf("200 of 250 bytes: got full")
	}
	b.add(3, 100)
	if !b.full() {
		t.Fatalf("300 of 250 bytes: got not full")
	}
	b.freeLE(1)
	if b.full() || b.bytes != 200 {
		t.Fatalf("after freeing 100: got full=%v bytes=%d, want not full, 200", b.full(), b.bytes)
	}
	b.reset()
	if b.count != 0 || b.bytes != 0 {
		t.Fatalf("reset: got count %d bytes %d", b.count, b.bytes)
	}
}
