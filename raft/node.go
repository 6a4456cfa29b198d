package raft

import (
	"errors"
	"fmt"
)

// SoftState is volatile state that the runtime may want to observe (who
// leads, which role this node has). It need not be persisted.
type SoftState struct {
	Lead NodeID
	Role Role
}

// Ready is a batch of work for the runtime, produced by Node.Ready. The
// runtime must handle it in this order (doc.go gives the reasons):
//
//  1. send SendNow (it may do so at once, in parallel with step 2);
//  2. persist Snapshot (if any), then Entries, then HardState (if not empty);
//     sync if MustSync;
//  3. send SendAfterPersist;
//  4. apply Snapshot (if any) and then CommittedEntries to the state
//     machine, in order; serve ReadStates once the state machine has
//     applied their Index;
//  5. call Advance(rd).
type Ready struct {
	// SoftState is non-nil when the leader or role changed.
	SoftState *SoftState
	// HardState is non-empty when it changed and must be persisted.
	HardState HardState
	// Entries must be appended to stable storage, replacing any suffix of
	// the stored log from Entries[0].Index on.
	Entries []Entry
	// Snapshot, when non-nil, replaces the stored log and the state machine.
	Snapshot *Snapshot
	// CommittedEntries are ready to be applied, in order. They may include
	// entries from Entries: apply only after persisting those.
	CommittedEntries []Entry
	// ReadStates answer ReadIndex requests.
	ReadStates []ReadState
	// SendNow may be sent before this Ready is persisted.
	SendNow []Message
	// SendAfterPersist must be sent only after this Ready is durable.
	SendAfterPersist []Message
	// MustSync tells whether step 2 needs an fsync (a vote, a term or
	// entries were written; a commit index alone needs none).
	MustSync bool
}

// Status is a snapshot of a node's state, for monitoring and tests.
type Status struct {
	ID NodeID
	HardState
	SoftState
	Applied        Index
	FirstIndex     Index
	LastIndex      Index
	LeadTransferee NodeID
	Config         ConfState
	// Progress is the leader's view of every member; nil on other roles.
	Progress map[NodeID]Progress
}

// Node is the consensus core of one replica: a deterministic state machine
// with no goroutines, clock, disk or network. Methods must not be called
// concurrently: the runtime owns it from one goroutine.
type Node struct {
	r        *raft
	prevHard HardState
	prevSoft SoftState
	// pending is the Ready handed out and not yet advanced.
	pending bool
}

// NewNode creates a node from its stable storage. A new cluster's storage
// must hold the initial membership (a ConfState) before the first start.
func NewNode(c Config) (*Node, error) {
	r, err := newRaft(&c)
	if err != nil {
		return nil, err
	}
	n := &Node{r: r, prevHard: r.hardState(), prevSoft: SoftState{Lead: r.lead, Role: r.role}}
	return n, nil
}

// Tick advances the logical clock by one tick: elections and heartbeats are
// measured in ticks.
func (n *Node) Tick() { n.r.tick(n.r) }

// Campaign starts an election now (with a pre-vote first if PreVote is on).
func (n *Node) Campaign() { n.r.hup(campaignElection) }

// Propose appends commands to the log (leader) or forwards them to the
// leader (follower). It returns ErrProposalDropped or ErrEntryTooLarge when
// the commands cannot be accepted; acceptance does not mean they will
// commit.
func (n *Node) Propose(data ...[]byte) error {
	return n.propose(EntryNormal, data)
}

// ProposeEntry is Propose for an entry of a given type.
func (n *Node) ProposeEntry(t EntryType, data []byte) error {
	return n.propose(t, [][]byte{data})
}

func (n *Node) propose(t EntryType, data [][]byte) error {
	if len(data) == 0 {
		return errors.New("raft: nothing to propose")
	}
	ents := make([]Entry, len(data))
	for i, d := range data {
		// Checked here as well as by the leader, so that a follower refuses
		// an oversized proposal instead of forwarding it to be dropped.
		if uint64(len(d)) > n.r.maxEntryBytes {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(d), n.r.maxEntryBytes)
		}
		ents[i] = Entry{Type: t, Data: d}
	}
	return n.r.Step(Message{Type: MsgProp, From: n.r.id, Entries: ents})
}

// ReadIndex requests a linearizable read point. The answer arrives as a
// ReadState carrying ctx in a later Ready; none arrives if leadership is
// lost meanwhile (retry after a timeout). ctx should be unique per request.
func (n *Node) ReadIndex(ctx []byte) error {
	return n.r.Step(Message{Type: MsgReadIndex, From: n.r.id, Context: ctx})
}

// TransferLeadership asks the leader to hand leadership to the given voter
// (§3.10). On a follower the request is forwarded to the leader.
func (n *Node) TransferLeadership(to NodeID) error {
	return n.r.Step(Message{Type: MsgTransferLeader, From: n.r.id, Context: encodeNodeID(to)})
}

// Step feeds a message received from a peer. Malformed messages are refused
// with an error and change nothing. An error wrapping ErrProposalDropped on
// a forwarded request is not a failure of this node; any other error means
// the peer, or this node's log, cannot be trusted.
func (n *Node) Step(m Message) error {
	if err := validateMessage(&m); err != nil {
		return err
	}
	if m.To != n.r.id {
		return fmt.Errorf("raft: %s from %d is addressed to %d, not to us (%d)", m.Type, m.From, m.To, n.r.id)
	}
	if isResponse(m.Type) && n.r.trk.progress[m.From] == nil && m.Type != MsgReadIndexResp {
		// A response from a node outside the configuration is dropped here,
		// before Step's term handling: a removed node's answer must not
		// make us adopt its term. (stepLeader's own check covers the
		// leader's other paths.)
		return nil
	}
	return n.r.Step(m)
}

// ReportUnreachable tells raft that a message to id could not be delivered.
func (n *Node) ReportUnreachable(id NodeID) { n.r.reportUnreachable(id) }

// ReportSnapshot tells raft whether sending a snapshot to id succeeded.
func (n *Node) ReportSnapshot(id NodeID, ok bool) { n.r.reportSnapshot(id, ok) }

// HasReady reports whether Ready would return any work.
func (n *Node) HasReady() bool {
	n.r.flush()
	if n.pending {
		return false
	}
	r := n.r
	if hs := r.hardState(); hs != n.prevHard {
		return true
	}
	if (SoftState{Lead: r.lead, Role: r.role}) != n.prevSoft {
		return true
	}
	return len(r.msgs) > 0 || len(r.msgsAfterPersist) > 0 || len(r.readStates) > 0 ||
		len(r.log.unstableEntries()) > 0 ||
		(r.log.unstable.snapshot != nil && !r.log.unstable.snapInProgress) ||
		r.log.hasNextCommittedEnts()
}

// Ready returns the work accumulated since the last Ready. The caller must
// handle it (see Ready) and call Advance before the next Ready. Step, Tick
// and the other inputs may be called in between.
func (n *Node) Ready() Ready {
	if n.pending {
		panic("raft: Ready called again before Advance")
	}
	r := n.r
	r.flush()
	var rd Ready
	if ss := (SoftState{Lead: r.lead, Role: r.role}); ss != n.prevSoft {
		// Copy before taking the address: &ss would move ss to the heap on
		// every call, changed or not.
		changed := ss
		rd.SoftState = &changed
		n.prevSoft = ss
	}
	hs := r.hardState()
	if hs != n.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != n.prevHard.Term || hs.Vote != n.prevHard.Vote
	}
	if s := r.log.unstable.snapshot; s != nil && !r.log.unstable.snapInProgress {
		rd.Snapshot = s
		rd.MustSync = true
	}
	rd.Entries = r.log.unstableEntries()
	if len(rd.Entries) > 0 {
		rd.MustSync = true
	}
	r.log.acceptInProgress()
	if rd.Snapshot != nil {
		// The snapshot is applied before any committed entry after it.
		r.log.applied = rd.Snapshot.Meta.Index
	} else if ents := r.log.nextCommittedEnts(); len(ents) > 0 {
		rd.CommittedEntries = ents
		r.log.appliedTo(ents[len(ents)-1].Index)
		r.reduceUncommitted(ents)
	}
	rd.ReadStates = r.readStates
	r.readStates = nil
	if hs.Term != n.prevHard.Term || hs.Vote != n.prevHard.Vote {
		// A term or vote not yet durable: nothing may go out before it is
		// (a restart could otherwise vote twice in one term).
		rd.SendAfterPersist = append(r.msgs, r.msgsAfterPersist...)
	} else {
		rd.SendNow = r.msgs
		rd.SendAfterPersist = r.msgsAfterPersist
	}
	r.msgs, r.msgsAfterPersist = nil, nil
	n.prevHard = hs
	n.pending = true
	return rd
}

func (r *raft) reduceUncommitted(ents []Entry) {
	if r.role != RoleLeader {
		return
	}
	for i := range ents {
		if ents[i].Term != r.term {
			continue
		}
		r.uncommittedBytes -= min(r.uncommittedBytes, uint64(len(ents[i].Data)))
	}
}

// Advance acknowledges that rd was handled: its entries and snapshot are
// durable. A leader counts its own log towards the commit index only from
// here on.
func (n *Node) Advance(rd Ready) {
	if !n.pending {
		panic("raft: Advance without a pending Ready")
	}
	n.pending = false
	r := n.r
	if rd.Snapshot != nil {
		r.log.stableSnapTo(rd.Snapshot.Meta.Index)
	}
	if k := len(rd.Entries); k > 0 {
		last := rd.Entries[k-1]
		r.log.stableTo(last.Index, last.Term)
	}
	if r.role == RoleLeader {
		if pr := r.trk.progress[r.id]; pr != nil && pr.maybeUpdate(r.stableLastIndex()) {
			// Followers hear of the commit from flushCommit.
			r.maybeCommit()
		}
	}
}

// Status returns a copy of the node's state.
func (n *Node) Status() Status {
	r := n.r
	s := Status{
		ID:             r.id,
		HardState:      r.hardState(),
		SoftState:      SoftState{Lead: r.lead, Role: r.role},
		Applied:        r.log.applied,
		FirstIndex:     r.log.firstIndex(),
		LastIndex:      r.log.lastIndex(),
		LeadTransferee: r.leadTransferee,
		Config:         r.trk.confState(),
	}
	if r.role == RoleLeader {
		s.Progress = make(map[NodeID]Progress, len(r.trk.ids))
		r.trk.visit(func(id NodeID, pr *Progress) {
			cp := *pr
			cp.inflights = nil
			s.Progress[id] = cp
		})
	}
	return s
}

// ID returns the node's ID.
func (n *Node) ID() NodeID { return n.r.id }

// LastIndex returns the index of the last entry in the log. Right after a
// successful Propose on the leader, it is the index of the last proposed
// entry.
func (n *Node) LastIndex() Index { return n.r.log.lastIndex() }

// Leader returns the leader this node knows of, or None.
func (n *Node) Leader() NodeID { return n.r.lead }

// Term returns the node's current term.
func (n *Node) Term() Term { return n.r.term }

// Role returns the node's current role.
func (n *Node) Role() Role { return n.r.role }
