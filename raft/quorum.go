package raft

import "slices"

// Quorum arithmetic, kept free of the rest of the protocol so it can be
// tested with tables (quorum_test.go).

// VoteResult is the outcome of counting votes.
type VoteResult uint8

const (
	// VotePending: neither a quorum of grants nor of rejections yet.
	VotePending VoteResult = iota + 1
	// VoteLost: enough rejections that a quorum of grants is impossible.
	VoteLost
	// VoteWon: a quorum granted.
	VoteWon
)

func (v VoteResult) String() string {
	switch v {
	case VotePending:
		return "VotePending"
	case VoteLost:
		return "VoteLost"
	case VoteWon:
		return "VoteWon"
	}
	return "VoteResult(?)"
}

// majorityConfig is a set of voters, kept sorted and free of duplicates so
// that iteration over it is deterministic.
type majorityConfig []NodeID

func newMajorityConfig(ids []NodeID) majorityConfig {
	c := slices.Clone(ids)
	slices.Sort(c)
	return slices.Compact(c)
}

func (c majorityConfig) contains(id NodeID) bool {
	_, ok := slices.BinarySearch(c, id)
	return ok
}

// quorum is the number of voters that form a majority.
func (c majorityConfig) quorum() int { return len(c)/2 + 1 }

// committedIndex returns the largest index that a majority has matched,
// given each voter's match index. An empty configuration commits
// everything, so that it is neutral in a joint configuration.
func (c majorityConfig) committedIndex(match func(NodeID) (Index, bool)) Index {
	n := len(c)
	if n == 0 {
		return ^Index(0)
	}
	// Small clusters are the norm: avoid the allocation.
	var stack [7]Index
	var srt []Index
	if n <= len(stack) {
		srt = stack[:n]
	} else {
		srt = make([]Index, n)
	}
	for i, id := range c {
		idx, _ := match(id)
		srt[i] = idx
	}
	slices.Sort(srt)
	// srt is ascending; the quorum-th largest value is matched by a majority.
	return srt[n-c.quorum()]
}

// voteResult counts votes (true = granted) of this configuration's voters.
// An empty configuration wins, for the same reason as in committedIndex.
func (c majorityConfig) voteResult(votes map[NodeID]bool) VoteResult {
	if len(c) == 0 {
		return VoteWon
	}
	granted, missing := 0, 0
	for _, id := range c {
		v, ok := votes[id]
		switch {
		case !ok:
			missing++
		case v:
			granted++
		}
	}
	q := c.quorum()
	if granted >= q {
		return VoteWon
	}
	if granted+missing >= q {
		return VotePending
	}
	return VoteLost
}

// jointConfig is the voter configuration: incoming and, during a joint
// consensus transition (§4.3), outgoing. Outside a transition outgoing is
// empty and every decision is the incoming majority's.
type jointConfig struct {
	incoming majorityConfig
	outgoing majorityConfig
}

func (j jointConfig) contains(id NodeID) bool {
	return j.incoming.contains(id) || j.outgoing.contains(id)
}

// ids returns every voter of either half, sorted and without duplicates.
func (j jointConfig) ids() []NodeID {
	return newMajorityConfig(append(slices.Clone(j.incoming), j.outgoing...))
}

// committedIndex requires both halves to agree: the smaller of the two.
func (j jointConfig) committedIndex(match func(NodeID) (Index, bool)) Index {
	return min(j.incoming.committedIndex(match), j.outgoing.committedIndex(match))
}

// voteResult is won only if both halves win, lost if either loses.
func (j jointConfig) voteResult(votes map[NodeID]bool) VoteResult {
	r1, r2 := j.incoming.voteResult(votes), j.outgoing.voteResult(votes)
	if r1 == r2 {
		return r1
	}
	if r1 == VoteLost || r2 == VoteLost {
		return VoteLost
	}
	return VotePending
}
