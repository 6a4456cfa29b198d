package raft

import "fmt"

// ProgressState is the leader's mode of replicating to one follower.
type ProgressState uint8

const (
	// StateProbe: the leader does not know where the follower's log matches
	// its own; it sends one append at a time (per heartbeat interval) and
	// walks Next back on rejection.
	StateProbe ProgressState = iota
	// StateReplicate: the logs match up to Match; the leader streams appends
	// optimistically (pipelining), bounded by the in-flight window.
	StateReplicate
	// StateSnapshot: the follower needs entries the leader has compacted; a
	// snapshot is on its way and nothing else is sent until it is reported.
	StateSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case StateProbe:
		return "StateProbe"
	case StateReplicate:
		return "StateReplicate"
	case StateSnapshot:
		return "StateSnapshot"
	}
	return fmt.Sprintf("ProgressState(%d)", uint8(s))
}

// Progress is the leader's view of one follower (or learner).
//
// Invariant: Match < Next.
type Progress struct {
	Match Index
	Next  Index
	State ProgressState
	// PendingSnapshot is the index of the snapshot being sent, in
	// StateSnapshot.
	PendingSnapshot Index
	// RecentActive is set whenever the follower is heard from and cleared by
	// each CheckQuorum round.
	RecentActive bool
	// ProbeSent is set in StateProbe once an append is outstanding; no other
	// append is sent until a response or a heartbeat response arrives.
	ProbeSent bool
	IsLearner bool
	// sentCommit is the highest commit index told to the follower (in an
	// append or a heartbeat) in this term: a commit advance needs a
	// message of its own only to followers told less.
	sentCommit Index
	// inflights bounds the appends sent but not acknowledged in
	// StateReplicate.
	inflights *inflights
}

func (pr *Progress) resetState(s ProgressState) {
	pr.ProbeSent = false
	pr.PendingSnapshot = 0
	pr.State = s
	pr.inflights.reset()
}

// becomeProbe moves to StateProbe. Coming from a snapshot, the follower is
// known to have the snapshot's index at least.
func (pr *Progress) becomeProbe() {
	if pr.State == StateSnapshot {
		pending := pr.PendingSnapshot
		pr.resetState(StateProbe)
		pr.Next = max(pr.Match+1, pending+1)
		return
	}
	pr.resetState(StateProbe)
	pr.Next = pr.Match + 1
}

func (pr *Progress) becomeReplicate() {
	pr.resetState(StateReplicate)
	pr.Next = pr.Match + 1
}

func (pr *Progress) becomeSnapshot(snapIndex Index) {
	pr.resetState(StateSnapshot)
	pr.PendingSnapshot = snapIndex
}

// maybeUpdate records that the follower matches up to n. It reports whether
// Match advanced.
func (pr *Progress) maybeUpdate(n Index) bool {
	updated := false
	if pr.Match < n {
		pr.Match = n
		updated = true
		pr.ProbeSent = false
	}
	pr.Next = max(pr.Next, n+1)
	return updated
}

// maybeDecrTo handles a rejected append of the entries after index rejected.
// matchHint is the leader's guess of the last index the follower may match
// (from the follower's conflict hint). It reports whether Next changed; a
// stale rejection changes nothing.
func (pr *Progress) maybeDecrTo(rejected, matchHint Index) bool {
	if pr.State == StateReplicate {
		// Appends before Match were acknowledged: a rejection at or below it
		// is a stale, reordered response.
		if rejected <= pr.Match {
			return false
		}
		pr.Next = pr.Match + 1
		return true
	}
	// In probe only the latest probe (Next-1) matters.
	if pr.Next-1 != rejected {
		return false
	}
	pr.Next = max(min(rejected, matchHint+1), pr.Match+1)
	pr.ProbeSent = false
	return true
}

// isPaused reports whether the leader must hold back appends to this
// follower.
func (pr *Progress) isPaused() bool {
	switch pr.State {
	case StateProbe:
		return pr.ProbeSent
	case StateReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

// sentEntries records that entries up to last (of the given size) were
// sent.
func (pr *Progress) sentEntries(last Index, bytes uint64) {
	switch pr.State {
	case StateReplicate:
		pr.Next = last + 1
		pr.inflights.add(last, bytes)
	case StateProbe:
		pr.ProbeSent = true
	}
}

func (pr *Progress) String() string {
	s := fmt.Sprintf("%s match=%d next=%d", pr.State, pr.Match, pr.Next)
	if pr.IsLearner {
		s += " learner"
	}
	if pr.State == StateSnapshot {
		s += fmt.Sprintf(" pending_snap=%d", pr.PendingSnapshot)
	}
	if pr.inflights != nil && pr.inflights.count > 0 {
		s += fmt.Sprintf(" inflight=%d", pr.inflights.count)
		if pr.inflights.full() {
			s += "[full]"
		}
	}
	return s
}

// inflights is a ring buffer of the last index of each append sent but not
// acknowledged, bounded both by count and by total bytes.
type inflights struct {
	start    int
	count    int
	bytes    uint64
	maxCount int
	maxBytes uint64 // 0 = no byte limit
	idx      []Index
	sizes    []uint64
}

func newInflights(maxCount int, maxBytes uint64) *inflights {
	return &inflights{maxCount: maxCount, maxBytes: maxBytes}
}

func (in *inflights) full() bool {
	return in.count == in.maxCount || (in.maxBytes != 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) add(last Index, bytes uint64) {
	if in.full() {
		panic("raft: adding to a full in-flight window")
	}
	if in.idx == nil {
		// Allocate lazily: idle followers cost nothing.
		in.idx = make([]Index, in.maxCount)
		in.sizes = make([]uint64, in.maxCount)
	}
	i := (in.start + in.count) % in.maxCount
	in.idx[i] = last
	in.sizes[i] = bytes
	in.count++
	in.bytes += bytes
}

// freeLE releases every append whose last index is <= to.
func (in *inflights) freeLE(to Index) {
	for in.count > 0 && in.idx[in.start] <= to {
		in.bytes -= in.sizes[in.start]
		in.start = (in.start + 1) % in.maxCount
		in.count--
	}
	if in.count == 0 {
		in.start = 0
	}
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}

// freeFirstOne releases the oldest in-flight append.
func (in *inflights) freeFirstOne() {
	if in.count > 0 {
		in.freeLE(in.idx[in.start])
	}
}
