package raft

import "slices"

// tracker holds the membership and the leader's per-node progress. Voters
// and learners live in one structure so that a joint-consensus change (§4.3)
// is a change of configuration, not of code.
type tracker struct {
	voters jointConfig
	// learners receive the log but never vote or count towards a quorum.
	learners []NodeID
	// learnersNext are voters of the outgoing half that become learners when
	// the joint configuration is left.
	learnersNext []NodeID

	progress map[NodeID]*Progress
	// ids is every member (voters of both halves and learners), sorted: the
	// deterministic iteration order.
	ids []NodeID

	votes map[NodeID]bool

	maxInflight      int
	maxInflightBytes uint64
}

func newTracker(maxInflight int, maxInflightBytes uint64) *tracker {
	return &tracker{
		progress:         map[NodeID]*Progress{},
		votes:            map[NodeID]bool{},
		maxInflight:      maxInflight,
		maxInflightBytes: maxInflightBytes,
	}
}

// applyConfState replaces the membership with cs. Progress of members that
// stay is kept; new members start probing at next.
func (t *tracker) applyConfState(cs ConfState, next Index) {
	t.voters = jointConfig{incoming: newMajorityConfig(cs.Voters), outgoing: newMajorityConfig(cs.VotersOutgoing)}
	t.learners = newMajorityConfig(cs.Learners)
	t.learnersNext = newMajorityConfig(cs.LearnersNext)
	ids := append(t.voters.ids(), t.learners...)
	ids = append(ids, t.learnersNext...)
	slices.Sort(ids)
	t.ids = slices.Compact(ids)
	keep := map[NodeID]*Progress{}
	for _, id := range t.ids {
		pr := t.progress[id]
		if pr == nil {
			pr = &Progress{Next: next, inflights: newInflights(t.maxInflight, t.maxInflightBytes)}
		}
		pr.IsLearner = !t.voters.contains(id)
		keep[id] = pr
	}
	t.progress = keep
}

// confState returns the membership as a ConfState.
func (t *tracker) confState() ConfState {
	clone := func(s []NodeID) []NodeID {
		if len(s) == 0 {
			return nil
		}
		return slices.Clone(s)
	}
	return ConfState{
		Voters:         clone(t.voters.incoming),
		VotersOutgoing: clone(t.voters.outgoing),
		Learners:       clone(t.learners),
		LearnersNext:   clone(t.learnersNext),
	}
}

func (t *tracker) isVoter(id NodeID) bool { return t.voters.contains(id) }

// isSingleVoter reports whether id is the only voter: it decides alone.
func (t *tracker) isSingleVoter(id NodeID) bool {
	return len(t.voters.outgoing) == 0 && len(t.voters.incoming) == 1 && t.voters.incoming[0] == id
}

// committed is the largest index a quorum of voters has matched.
func (t *tracker) committed() Index {
	return t.voters.committedIndex(func(id NodeID) (Index, bool) {
		pr, ok := t.progress[id]
		if !ok {
			return 0, false
		}
		return pr.Match, true
	})
}

func (t *tracker) resetVotes() { clear(t.votes) }

// recordVote records id's vote; only the first vote of each node counts.
func (t *tracker) recordVote(id NodeID, granted bool) {
	if _, ok := t.votes[id]; !ok {
		t.votes[id] = granted
	}
}

func (t *tracker) tallyVotes() (granted, rejected int, result VoteResult) {
	for _, id := range t.ids {
		if !t.voters.contains(id) {
			continue
		}
		v, ok := t.votes[id]
		if !ok {
			continue
		}
		if v {
			granted++
		} else {
			rejected++
		}
	}
	return granted, rejected, t.voters.voteResult(t.votes)
}

// quorumActive reports whether a quorum of voters was heard from recently
// (self counts as active). It is the CheckQuorum test (§6.2).
func (t *tracker) quorumActive(self NodeID) bool {
	votes := map[NodeID]bool{}
	for _, id := range t.ids {
		if !t.voters.contains(id) {
			continue
		}
		votes[id] = id == self || t.progress[id].RecentActive
	}
	return t.voters.voteResult(votes) == VoteWon
}

// visit calls f for each member in ascending ID order.
func (t *tracker) visit(f func(id NodeID, pr *Progress)) {
	for _, id := range t.ids {
		f(id, t.progress[id])
	}
}
