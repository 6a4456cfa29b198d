package raft

import "fmt"

// stepFollower handles messages for a follower, after Step handled terms.
func stepFollower(r *raft, m Message) error {
	switch m.Type {
	case MsgProp:
		if r.lead == None || !r.forwarding {
			return ErrProposalDropped
		}
		m.To = r.lead
		r.send(m)
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		return r.handleAppend(m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTransferLeader:
		if r.lead == None {
			return ErrProposalDropped
		}
		m.To = r.lead
		r.send(m)
	case MsgTimeoutNow:
		// §3.10: the leader has brought us up to date and asks us to take
		// over now, without waiting for the election timeout (and without a
		// pre-vote, which the current leader's followers would refuse).
		r.hup(campaignTransferType)
	case MsgReadIndex:
		if r.lead == None {
			return ErrProposalDropped
		}
		m.To = r.lead
		r.send(m)
	case MsgReadIndexResp:
		r.readStates = append(r.readStates, ReadState{Index: m.Index, RequestCtx: m.Context})
	}
	return nil
}

// stepCandidate handles messages for a candidate or pre-candidate.
func stepCandidate(r *raft, m Message) error {
	respType := MsgVoteResp
	if r.role == RolePreCandidate {
		respType = MsgPreVoteResp
	}
	switch m.Type {
	case MsgProp, MsgReadIndex, MsgTransferLeader:
		return ErrProposalDropped
	case MsgApp:
		// A leader of our term exists (§5.2): give up.
		r.becomeFollower(m.Term, m.From)
		return r.handleAppend(m)
	case MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case respType:
		if r.role == RolePreCandidate && m.Term != r.term+1 && !m.Reject {
			// A grant for some other pre-vote round.
			return nil
		}
		r.trk.recordVote(m.From, !m.Reject)
		switch _, _, res := r.trk.tallyVotes(); res {
		case VoteWon:
			if r.role == RolePreCandidate {
				r.campaign(campaignElection)
			} else {
				r.becomeLeader()
				r.bcastAppend()
			}
		case VoteLost:
			r.becomeFollower(r.term, None)
		}
	}
	return nil
}

func (r *raft) handleAppend(m Message) error {
	if m.Index < r.log.committed {
		// Everything up to our commit index matches any leader's log: tell
		// the leader where we are.
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.committed})
		return nil
	}
	last, ok, err := r.maybeAppend(m)
	if err != nil {
		return err
	}
	if ok {
		r.send(Message{To: m.From, Type: MsgAppResp, Index: last})
		return nil
	}
	// The consistency check failed (§5.3). Hint the leader at the last
	// index whose term is <= the probe's term, so it skips a whole term of
	// mismatching entries per round trip instead of one entry.
	hint := min(m.Index, r.log.lastIndex())
	hint, hintTerm := r.log.findConflictByTerm(hint, m.LogTerm)
	r.send(Message{To: m.From, Type: MsgAppResp, Index: m.Index, Reject: true, RejectHint: hint, LogTerm: hintTerm})
	return nil
}

// maybeAppend wraps raftLog.maybeAppend, turning a conflict with the
// committed prefix — which only a diverged log or a broken peer can cause —
// into an error instead of corrupting the log.
func (r *raft) maybeAppend(m Message) (Index, bool, error) {
	if !r.log.matchTerm(m.Index, m.LogTerm) {
		return 0, false, nil
	}
	if ci := r.log.findConflict(m.Entries); ci != 0 && ci <= r.log.committed {
		t, _ := r.log.term(ci)
		return 0, false, fmt.Errorf("raft: leader %d sent entry %d of term %d, which conflicts with our committed entry of term %d (commit %d): logs diverged",
			m.From, ci, m.Entries[ci-m.Index-1].Term, t, r.log.committed)
	}
	last, ok := r.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries)
	return last, ok, nil
}

func (r *raft) handleHeartbeat(m Message) {
	// The leader bounds Commit by what we are known to match; the extra
	// bound keeps a confused peer from pushing us past our log.
	r.log.commitTo(min(m.Commit, r.log.lastIndex()))
	r.send(Message{To: m.From, Type: MsgHeartbeatResp, Context: m.Context})
}

func (r *raft) handleSnapshot(m Message) {
	if r.restore(*m.Snapshot) {
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.lastIndex()})
		return
	}
	r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.committed})
}

// restore installs a snapshot from the leader, unless the log already
// covers it. It reports whether the snapshot was taken.
func (r *raft) restore(s Snapshot) bool {
	if s.Meta.Index <= r.log.committed {
		return false
	}
	if r.log.matchTerm(s.Meta.Index, s.Meta.Term) {
		// Our log holds the snapshot's last entry: the prefix matches, so
		// just commit up to it and keep the entries after it (§7).
		r.log.commitTo(s.Meta.Index)
		return false
	}
	r.log.restore(s)
	r.trk.applyConfState(s.Meta.ConfState, r.log.lastIndex()+1)
	return true
}
