package raft

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// stepLeader handles messages for the leader, after Step handled terms.
func stepLeader(r *raft, m Message) error {
	switch m.Type {
	case MsgProp:
		return r.handlePropose(m)
	case MsgReadIndex:
		return r.handleReadIndex(m)
	case MsgTransferLeader:
		r.handleTransferLeader(decodeNodeID(m.Context))
		return nil
	}

	pr := r.trk.progress[m.From]
	if pr == nil {
		// A node outside the configuration: nothing to track.
		return nil
	}
	switch m.Type {
	case MsgAppResp:
		if !m.Reject && m.Index > r.log.lastIndex() {
			// Within our term our log only grows, and every follower's
			// acknowledgment is of something we sent: this one is not.
			// Believing it would set Match past our log (and, with no
			// snapshot to send, panic in maybeSendSnapshot).
			return fmt.Errorf("raft: MsgAppResp from %d acknowledges index %d, past our last index %d", m.From, m.Index, r.log.lastIndex())
		}
		r.handleAppendResponse(m, pr)
	case MsgHeartbeatResp:
		pr.RecentActive = true
		pr.ProbeSent = false
		if pr.State == StateReplicate && pr.inflights.full() {
			// The follower is alive; free one slot so a lost append
			// cannot stall the pipeline until the next response.
			pr.inflights.freeFirstOne()
		}
		if pr.Match < r.log.lastIndex() {
			r.sendAppend(m.From)
		}
		if len(m.Context) > 0 {
			r.readOnly.recvAck(m.From, m.Context)
			r.releaseReads()
		}
	case MsgVoteResp, MsgPreVoteResp:
		// Late answers to the election we already won.
	}
	return nil
}

func (r *raft) handlePropose(m Message) error {
	if r.trk.progress[r.id] == nil {
		// Removed from the configuration: we cannot commit anything.
		return ErrProposalDropped
	}
	if r.leadTransferee != None {
		// §3.10: stop accepting proposals during a transfer so the target
		// can catch up.
		return ErrProposalDropped
	}
	var size uint64
	for i := range m.Entries {
		if uint64(len(m.Entries[i].Data)) > r.maxEntryBytes {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(m.Entries[i].Data), r.maxEntryBytes)
		}
		size += uint64(len(m.Entries[i].Data))
	}
	if r.uncommittedBytes > 0 && r.uncommittedBytes+size > r.maxUncommittedBytes {
		return ErrProposalDropped
	}
	r.uncommittedBytes += size
	ents := make([]Entry, len(m.Entries))
	for i := range m.Entries {
		ents[i] = Entry{Type: m.Entries[i].Type, Data: m.Entries[i].Data}
	}
	r.appendEntries(ents)
	r.bcastAppend()
	return nil
}

// committedEntryInCurrentTerm reports whether the leader knows its commit
// index is current: an entry of its own term is committed (§6.4 step 1).
func (r *raft) committedEntryInCurrentTerm() bool {
	return r.log.termOrZero(r.log.committed) == r.term
}

func (r *raft) handleReadIndex(m Message) error {
	if r.trk.isSingleVoter(r.id) {
		r.respondRead(m, r.log.committed)
		return nil
	}
	if !r.committedEntryInCurrentTerm() {
		if len(r.pendingReads) >= maxPendingReads {
			return ErrProposalDropped
		}
		r.pendingReads = append(r.pendingReads, m)
		return nil
	}
	if r.readOnly.option == ReadOnlyLeaseBased && r.leaseValid() {
		// §6.4.1: within the lease no other leader can exist.
		r.respondRead(m, r.log.committed)
		return nil
	}
	// Safe reads, and lease reads while the lease is not known to hold:
	// confirm leadership with a heartbeat round. The round starts when the
	// Ready is taken (flush), one for all the requests of the round: an
	// acknowledgment of the newest covers every earlier one.
	if !r.readOnly.add(r.log.committed, m) {
		return ErrProposalDropped
	}
	r.readRoundPending = true
	return nil
}

// leaseValid reports whether no other leader can have been elected
// (§6.4.1). Every follower that acknowledged heartbeat round s heard from
// this leader no earlier than the round was first sent, and ignores vote
// requests for an election timeout after that (§4.2.3; a restarted node
// too, holdVotes). A new leader needs the vote of a quorum, which shares a
// member with the quorum that acknowledged round quorumRound: so until
// LeaseDuration after that round was sent, no other leader exists. The
// clock, not ticks, times it: a leader paused past its lease sees the time
// it missed. During a transfer, and for the rest of the term once one was
// started, the target's forced vote requests bypass the followers' leases,
// so there is no lease either.
func (r *raft) leaseValid() bool {
	if r.leadTransferee != None || r.transferred || len(r.roundsSent) == 0 {
		return false
	}
	q := r.readOnly.quorumRound(r.id, r.trk.voters)
	i, ok := slices.BinarySearchFunc(r.roundsSent, q, func(rs roundSent, q uint64) int { return cmp.Compare(rs.seq, q) })
	if !ok {
		// Not a round sent in this term, or one older than any lease.
		return false
	}
	return r.now() < r.roundsSent[i].at+r.leaseDuration
}

// roundSent is when a heartbeat round was first sent.
type roundSent struct {
	seq uint64
	at  int64 // on Config.Now
}

// maxRoundsSent bounds roundsSent; past it the oldest rounds are forgotten
// (a lease they could give is at worst refused).
const maxRoundsSent = 1024

// noteRoundSent records the first sending of the round in ctx, and forgets
// rounds too old to give a lease.
func (r *raft) noteRoundSent(ctx []byte) {
	if len(ctx) != 8 {
		return
	}
	seq := binary.LittleEndian.Uint64(ctx)
	if n := len(r.roundsSent); n > 0 && r.roundsSent[n-1].seq >= seq {
		return // sent before: the first sending is the one that counts
	}
	now := r.now()
	drop := 0
	for drop < len(r.roundsSent) && (now-r.roundsSent[drop].at >= r.leaseDuration || len(r.roundsSent)-drop >= maxRoundsSent) {
		drop++
	}
	if drop > 0 {
		r.roundsSent = append(r.roundsSent[:0], r.roundsSent[drop:]...)
	}
	r.roundsSent = append(r.roundsSent, roundSent{seq: seq, at: now})
}

// respondRead answers a read request locally (ReadState) or to the
// follower that forwarded it.
func (r *raft) respondRead(req Message, index Index) {
	if req.From == None || req.From == r.id {
		r.readStates = append(r.readStates, ReadState{Index: index, RequestCtx: req.Context})
		return
	}
	r.send(Message{To: req.From, Type: MsgReadIndexResp, Index: index, Context: req.Context})
}

func (r *raft) releaseReads() {
	for _, pr := range r.readOnly.release(r.id, r.trk.voters) {
		r.respondRead(pr.req, pr.index)
	}
}

// releasePendingReads serves the reads held until the first commit of the
// term.
func (r *raft) releasePendingReads() {
	if len(r.pendingReads) == 0 || !r.committedEntryInCurrentTerm() {
		return
	}
	reads := r.pendingReads
	r.pendingReads = nil
	for _, m := range reads {
		// A read refused here (queue full) gets no answer; its client
		// times out and retries, as after a lost leadership.
		_ = r.handleReadIndex(m)
	}
}

func (r *raft) handleAppendResponse(m Message, pr *Progress) {
	pr.RecentActive = true
	if m.Reject {
		// Fast backtracking (§5.3): the follower's hint names the last index
		// whose term is <= the probe's; on our side, skip every index whose
		// term is larger than the follower's at the hint.
		next := m.RejectHint
		if m.LogTerm > 0 {
			next, _ = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, next) {
			if pr.State == StateReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From)
		}
		return
	}
	wasPaused := pr.isPaused()
	if !pr.maybeUpdate(m.Index) {
		return
	}
	switch {
	case pr.State == StateProbe:
		pr.becomeReplicate()
	case pr.State == StateSnapshot && pr.Match >= pr.PendingSnapshot:
		pr.becomeProbe()
		pr.becomeReplicate()
	case pr.State == StateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if !r.maybeCommit() && wasPaused {
		r.sendAppend(m.From)
	}
	// Keep the pipeline full.
	for r.maybeSendAppend(m.From, false) {
	}
	if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
		r.transferred = true
		r.send(Message{To: m.From, Type: MsgTimeoutNow})
	}
}

// maybeCommit advances the commit index to what a quorum matched, if that
// entry is of the current term (§5.4.2, Figure 8).
func (r *raft) maybeCommit() bool {
	if !r.log.maybeCommit(r.trk.committed(), r.term) {
		return false
	}
	r.releasePendingReads()
	return true
}

func (r *raft) handleTransferLeader(to NodeID) {
	pr := r.trk.progress[to]
	if pr == nil || pr.IsLearner || to == r.id {
		return
	}
	if r.leadTransferee == to {
		return
	}
	r.leadTransferee = to
	// The transfer must finish within an election timeout (tickHeartbeat).
	r.transferElapsed = 0
	if pr.Match == r.log.lastIndex() {
		r.transferred = true
		r.send(Message{To: to, Type: MsgTimeoutNow})
		return
	}
	r.sendAppend(to)
}

// flush sends what a leader gathers over a round of inputs rather than
// sending for each: the heartbeat round confirming the round's read
// requests, and commit advances no message carried.
func (r *raft) flush() {
	if r.role != RoleLeader {
		return
	}
	if r.readRoundPending {
		// First: the heartbeats carry the commit index too.
		r.readRoundPending = false
		r.bcastHeartbeat(r.readOnly.roundCtx())
	}
	r.flushCommit()
}

// flushCommit tells a follower of a commit advance no message has carried
// yet, with an empty append, once it has acknowledged everything sent to
// it. While appends are still unacknowledged it waits: the next append (for
// new proposals) carries the new commit index, and if none comes, the
// acknowledgments do bring it here again. A busy leader thus sends no
// message, and its followers no response, for a commit alone. It runs when
// a Ready is taken, after all the round's inputs were stepped.
func (r *raft) flushCommit() {
	r.trk.visit(func(id NodeID, pr *Progress) {
		if id == r.id || pr.sentCommit >= r.log.committed || pr.Match+1 < pr.Next {
			return
		}
		if r.maybeSendAppend(id, true) {
			for r.maybeSendAppend(id, false) {
			}
		}
	})
}

func (r *raft) bcastAppend() {
	r.trk.visit(func(id NodeID, pr *Progress) {
		if id == r.id {
			return
		}
		if r.maybeSendAppend(id, true) {
			for r.maybeSendAppend(id, false) {
			}
		}
	})
}

func (r *raft) bcastHeartbeat(ctx []byte) {
	if r.readOnly.option == ReadOnlyLeaseBased {
		r.noteRoundSent(ctx)
	}
	r.trk.visit(func(id NodeID, pr *Progress) {
		if id == r.id {
			return
		}
		// Never tell a follower to commit past what it is known to hold.
		commit := min(pr.Match, r.log.committed)
		r.send(Message{To: id, Type: MsgHeartbeat, Commit: commit, Context: ctx})
		pr.sentCommit = max(pr.sentCommit, commit)
	})
}

func (r *raft) sendAppend(to NodeID) { r.maybeSendAppend(to, true) }

// maybeSendAppend sends the next append (or a snapshot) to a follower,
// unless its progress is paused. With sendIfEmpty false nothing is sent when
// there are no new entries. It reports whether a message was sent.
func (r *raft) maybeSendAppend(to NodeID, sendIfEmpty bool) bool {
	pr := r.trk.progress[to]
	if pr.isPaused() {
		return false
	}
	prevIndex := pr.Next - 1
	prevTerm, errTerm := r.log.term(prevIndex)
	var ents []Entry
	var errEnts error
	if pr.State != StateReplicate || !pr.inflights.full() {
		ents, errEnts = r.log.entries(pr.Next, r.maxMsgBytes)
	}
	if len(ents) == 0 && !sendIfEmpty && errTerm == nil && errEnts == nil {
		return false
	}
	if errTerm != nil || errEnts != nil {
		return r.maybeSendSnapshot(to, pr)
	}
	r.send(Message{To: to, Type: MsgApp, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	pr.sentCommit = r.log.committed
	if n := len(ents); n > 0 {
		var bytes uint64
		for i := range ents {
			bytes += ents[i].size()
		}
		pr.sentEntries(ents[n-1].Index, bytes)
	} else if pr.State == StateProbe {
		pr.ProbeSent = true
	}
	return true
}

// maybeSendSnapshot sends the latest snapshot to a follower that needs
// compacted entries (§7).
func (r *raft) maybeSendSnapshot(to NodeID, pr *Progress) bool {
	if !pr.RecentActive {
		// A snapshot is expensive: send it only to a follower known alive.
		return false
	}
	snap, err := r.log.snapshot()
	if err == ErrSnapshotTemporarilyUnavailable {
		return false
	}
	mustStorage(err)
	if snap.IsEmpty() {
		panic("raft: a follower needs compacted entries but there is no snapshot")
	}
	r.send(Message{To: to, Type: MsgSnap, Snapshot: &snap})
	pr.becomeSnapshot(snap.Meta.Index)
	return true
}

// reportUnreachable: the runtime could not deliver to id; stop streaming
// optimistically and probe instead.
func (r *raft) reportUnreachable(id NodeID) {
	if r.role != RoleLeader {
		return
	}
	if pr := r.trk.progress[id]; pr != nil && pr.State == StateReplicate {
		pr.becomeProbe()
	}
}

// reportSnapshot: the runtime finished (ok) or failed sending a snapshot.
func (r *raft) reportSnapshot(id NodeID, ok bool) {
	if r.role != RoleLeader {
		return
	}
	pr := r.trk.progress[id]
	if pr == nil || pr.State != StateSnapshot {
		return
	}
	if !ok {
		pr.PendingSnapshot = 0
	}
	pr.becomeProbe()
	// Wait for the follower's answer to the snapshot (or the next
	// heartbeat) before probing again.
	pr.ProbeSent = true
}
