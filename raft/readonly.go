package raft

import "encoding/binary"

// ReadState is the answer to a ReadIndex request: once the state machine has
// applied Index, a read issued when RequestCtx was submitted may be served
// from it and is linearizable (§6.4).
type ReadState struct {
	Index      Index
	RequestCtx []byte
}

// readOnly tracks ReadIndex requests waiting for the leader to confirm it is
// still the leader.
//
// Every request gets a sequence number, sent as the context of a heartbeat
// round. A follower acknowledging round s has heard from this leader after
// every request numbered <= s was received, so one acknowledgment covers all
// earlier requests: only the highest acknowledged round per follower is kept.
type readOnly struct {
	option ReadOnlyOption
	seq    uint64
	// queue holds pending requests in sequence order.
	queue []pendingRead
	// acked is the highest round each follower acknowledged in this term.
	acked map[NodeID]uint64
}

type pendingRead struct {
	seq   uint64
	index Index
	req   Message
}

// maxPendingReads bounds the requests waiting for leadership confirmation,
// and separately those a new leader holds until its first commit of the
// term; past it new requests are refused with ErrProposalDropped.
const maxPendingReads = 1 << 14

func newReadOnly(opt ReadOnlyOption) *readOnly {
	return &readOnly{option: opt, acked: map[NodeID]uint64{}}
}

func (ro *readOnly) reset() {
	ro.queue = nil
	clear(ro.acked)
}

// add queues a request to be served at index; false if the queue is full.
// A heartbeat round with roundCtx, sent after add, confirms it.
func (ro *readOnly) add(index Index, req Message) bool {
	if len(ro.queue) >= maxPendingReads {
		return false
	}
	ro.seq++
	ro.queue = append(ro.queue, pendingRead{seq: ro.seq, index: index, req: req})
	return true
}

// roundCtx is the heartbeat context confirming every request added so far.
func (ro *readOnly) roundCtx() []byte {
	return binary.LittleEndian.AppendUint64(nil, ro.seq)
}

// nextRound starts a heartbeat round of its own (lease mode's periodic
// heartbeats) and returns its context. It confirms every request added so
// far, as roundCtx does: it is sent after all of them were received.
func (ro *readOnly) nextRound() []byte {
	ro.seq++
	return ro.roundCtx()
}

// quorumRound is the newest round a quorum acknowledged (this leader counts
// as having acknowledged all): the same arithmetic as the commit index.
func (ro *readOnly) quorumRound(self NodeID, voters jointConfig) uint64 {
	return uint64(voters.committedIndex(func(id NodeID) (Index, bool) {
		if id == self {
			return Index(ro.seq), true
		}
		s, ok := ro.acked[id]
		return Index(s), ok
	}))
}

// recvAck records a follower's acknowledgment of the round in ctx.
func (ro *readOnly) recvAck(from NodeID, ctx []byte) {
	if len(ctx) != 8 {
		return
	}
	seq := binary.LittleEndian.Uint64(ctx)
	if seq > ro.seq {
		// Not a round of this leader's: ignore rather than trust.
		return
	}
	if seq > ro.acked[from] {
		ro.acked[from] = seq
	}
}

// release pops every request whose round a quorum acknowledged. Acks only
// grow, so the rounds a quorum acknowledged are exactly those up to the
// quorum's "committed" round: the same arithmetic as the commit index, with
// rounds for indexes and this leader counting as having acknowledged all.
func (ro *readOnly) release(self NodeID, voters jointConfig) []pendingRead {
	if len(ro.queue) == 0 {
		return nil
	}
	acked := ro.quorumRound(self, voters)
	n := 0
	for n < len(ro.queue) && ro.queue[n].seq <= acked {
		n++
	}
	if n == 0 {
		return nil
	}
	done := ro.queue[:n:n]
	ro.queue = ro.queue[n:]
	if len(ro.queue) == 0 {
		ro.queue = nil
	}
	return done
}
