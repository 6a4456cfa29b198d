package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrProposalDropped is returned when a proposal cannot be accepted now: no
// leader is known, a leadership transfer is under way, this node is not the
// leader and forwarding is disabled, or too many bytes are uncommitted. The
// caller may retry later.
var ErrProposalDropped = errors.New("raft: proposal dropped")

// ErrEntryTooLarge is returned for a proposal larger than MaxEntryBytes.
var ErrEntryTooLarge = errors.New("raft: entry exceeds the maximum entry size")

// Role is a node's part in the protocol.
type Role uint8

const (
	RoleFollower Role = iota
	RolePreCandidate
	RoleCandidate
	RoleLeader
)

func (r Role) String() string {
	switch r {
	case RoleFollower:
		return "Follower"
	case RolePreCandidate:
		return "PreCandidate"
	case RoleCandidate:
		return "Candidate"
	case RoleLeader:
		return "Leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// campaignTransfer marks votes requested because of a leadership transfer:
// they bypass PreVote and the leader lease (§3.10).
var campaignTransfer = []byte("transfer")

// raft is the protocol state of one node. It performs no I/O: outputs are
// queued in msgs/readStates and the log's unstable part, and collected by
// Node.Ready.
type raft struct {
	id   NodeID
	term Term
	vote NodeID
	// lead is the leader of the current term, if known.
	lead NodeID
	role Role

	log *raftLog
	trk *tracker

	// msgs are sent as soon as they are handed out; msgsAfterPersist only
	// once the Ready that carries them is durable (see doc.go).
	msgs             []Message
	msgsAfterPersist []Message
	readStates       []ReadState

	electionTimeout  int
	heartbeatTimeout int
	// randomizedElectionTimeout is in [electionTimeout, 2*electionTimeout).
	randomizedElectionTimeout int
	// electionElapsed counts ticks since the last valid leader contact
	// (followers) or since the last CheckQuorum round (leaders).
	electionElapsed  int
	heartbeatElapsed int

	preVote     bool
	checkQuorum bool
	forwarding  bool

	maxMsgBytes         uint64
	maxUncommittedBytes uint64
	maxEntryBytes       uint64
	// uncommittedBytes is the payload the leader appended in its term that
	// has not been handed out as committed.
	uncommittedBytes uint64
	// readRoundPending: read requests were queued since the last heartbeat
	// round; flush starts one.
	readRoundPending bool

	readOnly *readOnly
	// now and leaseDuration time the lease of ReadOnlyLeaseBased.
	now           func() int64
	leaseDuration int64
	// roundsSent records, oldest first, when this leader first sent each
	// heartbeat round of its term (lease mode only; see leaseValid).
	roundsSent []roundSent
	// transferred: this leader sent MsgTimeoutNow in its term, and its
	// lease is gone for the rest of the term: the target's forced vote
	// requests bypass the followers' leases, and the message may arrive at
	// any time.
	transferred bool
	// holdVotes makes a restarted node ignore vote requests for an
	// election timeout (lease mode): it may have acknowledged a heartbeat
	// before it went down, and a leader's lease counts on it.
	holdVotes bool
	// pendingReads are ReadIndex requests received before the leader
	// committed an entry of its term; they are served once it has (§6.4).
	pendingReads []Message

	// leadTransferee is the target of an ongoing leadership transfer.
	leadTransferee NodeID
	// transferElapsed counts the leader's ticks since the transfer to
	// leadTransferee began; it is aborted after an election timeout (§3.10).
	// It is separate from electionElapsed so that transfer requests cannot
	// postpone the CheckQuorum round.
	transferElapsed int

	rand rng
	step func(r *raft, m Message) error
	tick func(r *raft)
}

func newRaft(c *Config) (*raft, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	hs, cs, err := c.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("raft: reading initial state: %w", err)
	}
	if cs.IsEmpty() {
		return nil, errors.New("raft: storage holds no membership: bootstrap the ConfState first")
	}
	r := &raft{
		id:                  c.ID,
		log:                 newLog(c.Storage, c.MaxApplyBytesPerReady),
		trk:                 newTracker(c.MaxInflightMsgs, c.MaxInflightBytes),
		electionTimeout:     c.ElectionTicks,
		heartbeatTimeout:    c.HeartbeatTicks,
		preVote:             c.PreVote,
		checkQuorum:         c.CheckQuorum,
		forwarding:          !c.DisableProposalForwarding,
		maxMsgBytes:         c.MaxBytesPerMsg,
		maxUncommittedBytes: c.MaxUncommittedBytes,
		maxEntryBytes:       c.MaxEntryBytes,
		readOnly:            newReadOnly(c.ReadOnly),
		now:                 c.Now,
		leaseDuration:       c.LeaseDuration,
		// A node that never had a term never acknowledged a heartbeat.
		holdVotes: c.ReadOnly == ReadOnlyLeaseBased && !hs.IsEmpty(),
		rand:      rng{state: c.Seed ^ uint64(c.ID)*0x2545f4914f6cdd1d},
	}
	r.trk.applyConfState(cs, r.log.lastIndex()+1)
	if !hs.IsEmpty() {
		if hs.Commit > r.log.lastIndex() {
			return nil, fmt.Errorf("raft: hard state commit %d is past the last index %d", hs.Commit, r.log.lastIndex())
		}
		// A snapshot installed from the leader is committed even if the hard
		// state written with it still carries an older commit index: keep
		// the larger of the two.
		r.log.committed = max(r.log.committed, hs.Commit)
		r.term = hs.Term
		r.vote = hs.Vote
	}
	if c.Applied > 0 {
		if c.Applied > r.log.committed {
			return nil, fmt.Errorf("raft: applied index %d is past the commit index %d", c.Applied, r.log.committed)
		}
		r.log.applied = max(r.log.applied, c.Applied)
	}
	r.becomeFollower(r.term, None)
	return r, nil
}

func (r *raft) hardState() HardState {
	return HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

// send queues m, stamping it with this node's identity and term.
func (r *raft) send(m Message) {
	m.From = r.id
	switch {
	case m.Type == MsgProp || m.Type == MsgReadIndex || m.Type == MsgTransferLeader:
		// Forwarded requests are term-less: they are valid in any term.
		m.Term = 0
	case m.Term == 0:
		// Pre-vote requests and granted pre-vote responses set the future
		// term themselves; everything else carries the current one.
		m.Term = r.term
	}
	if r.role == RoleLeader && leaderMayPipeline(m.Type) {
		r.msgs = append(r.msgs, m)
		return
	}
	r.msgsAfterPersist = append(r.msgsAfterPersist, m)
}

// leaderMayPipeline lists what a leader may send before its own disk write
// completes: nothing in them claims anything about the leader's durable
// log (§10.2.1: the leader writes to its disk in parallel with replicating).
func leaderMayPipeline(t MessageType) bool {
	switch t {
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow, MsgReadIndexResp:
		return true
	}
	return false
}

// promotable reports whether this node may become leader: it is a voter and
// has no snapshot waiting to be persisted.
func (r *raft) promotable() bool {
	return r.trk.isVoter(r.id) && r.log.unstable.snapshot == nil
}

func (r *raft) resetRandomizedElectionTimeout() {
	r.randomizedElectionTimeout = r.electionTimeout + r.rand.intn(r.electionTimeout)
}

// stableLastIndex is the last index known to be durable locally with the
// current log's content.
func (r *raft) stableLastIndex() Index {
	if r.log.unstable.snapshot != nil {
		return 0
	}
	return r.log.unstable.offset - 1
}

func (r *raft) reset(term Term) {
	if r.term != term {
		r.term = term
		r.vote = None
	}
	r.lead = None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.resetRandomizedElectionTimeout()
	r.leadTransferee = None
	r.trk.resetVotes()
	last := r.log.lastIndex()
	r.trk.visit(func(id NodeID, pr *Progress) {
		learner := pr.IsLearner
		*pr = Progress{Next: last + 1, inflights: pr.inflights, IsLearner: learner}
		pr.inflights.reset()
		if id == r.id {
			pr.Match = r.stableLastIndex()
			pr.Next = max(pr.Match+1, last+1)
		}
	})
	r.readOnly.reset()
	r.roundsSent = r.roundsSent[:0]
	r.transferred = false
	r.pendingReads = nil
	r.uncommittedBytes = 0
	r.readRoundPending = false
}

func (r *raft) becomeFollower(term Term, lead NodeID) {
	r.reset(term)
	r.step = stepFollower
	r.tick = tickElection
	r.lead = lead
	r.role = RoleFollower
}

func (r *raft) becomePreCandidate() {
	if r.role == RoleLeader {
		panic("raft: leader cannot become pre-candidate")
	}
	// Neither term nor vote change (§9.6): a pre-vote disturbs no one.
	r.step = stepCandidate
	r.tick = tickElection
	r.trk.resetVotes()
	r.lead = None
	r.role = RolePreCandidate
}

func (r *raft) becomeCandidate() {
	if r.role == RoleLeader {
		panic("raft: leader cannot become candidate")
	}
	r.reset(r.term + 1)
	r.step = stepCandidate
	r.tick = tickElection
	r.vote = r.id
	r.role = RoleCandidate
}

func (r *raft) becomeLeader() {
	if r.role == RoleFollower {
		panic("raft: follower cannot become leader without an election")
	}
	r.reset(r.term)
	r.step = stepLeader
	r.tick = tickHeartbeat
	r.lead = r.id
	r.role = RoleLeader
	r.trk.progress[r.id].becomeReplicate()
	// A no-op entry of the new term: committing it commits every earlier
	// entry (§5.4.2) and tells the leader its commit index is current, which
	// ReadIndex needs (§6.4).
	r.appendEntries([]Entry{{}})
}

// appendEntries stamps ents with the leader's term and next indexes and
// appends them. The leader's own match advances only when they are
// persisted (Advance).
func (r *raft) appendEntries(ents []Entry) {
	last := r.log.lastIndex()
	for i := range ents {
		ents[i].Term = r.term
		ents[i].Index = last + 1 + Index(i)
	}
	// Even a single voter waits for its own disk: the commit happens in
	// Advance, once the entries are durable.
	r.log.append(ents...)
}

type campaignType uint8

const (
	campaignPreElection campaignType = iota
	campaignElection
	campaignTransferType
)

// hup starts an election, if this node may lead.
func (r *raft) hup(t campaignType) {
	if r.role == RoleLeader || !r.promotable() {
		return
	}
	if r.preVote && t == campaignElection {
		t = campaignPreElection
	}
	r.campaign(t)
}

func (r *raft) campaign(t campaignType) {
	var voteMsg MessageType
	var term Term
	if t == campaignPreElection {
		r.becomePreCandidate()
		voteMsg, term = MsgPreVote, r.term+1
	} else {
		r.becomeCandidate()
		voteMsg, term = MsgVote, r.term
	}
	r.trk.recordVote(r.id, true)
	if _, _, res := r.trk.tallyVotes(); res == VoteWon {
		// A single voter wins at once.
		if t == campaignPreElection {
			r.campaign(campaignElection)
		} else {
			r.becomeLeader()
		}
		return
	}
	var ctx []byte
	if t == campaignTransferType {
		ctx = campaignTransfer
	}
	lastIndex, lastTerm := r.log.lastIndex(), r.log.lastTerm()
	for _, id := range r.trk.voters.ids() {
		if id == r.id {
			continue
		}
		r.send(Message{Type: voteMsg, To: id, Term: term, Index: lastIndex, LogTerm: lastTerm, Context: ctx})
	}
}

// Step advances the state machine with a message. It handles terms (§5.1)
// and votes for every role, then hands the rest to the role's step function.
func (r *raft) Step(m Message) error {
	switch {
	case m.Term == 0:
		// Local requests and forwarded proposals, reads and transfers.
	case m.Term > r.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			force := string(m.Context) == string(campaignTransfer)
			inLease := r.checkQuorum && (r.lead != None || r.holdVotes) && r.electionElapsed < r.electionTimeout
			if !force && inLease {
				// §4.2.3: while a node hears from a leader it ignores
				// requests to vote, so that a removed or partitioned node
				// cannot disrupt the cluster by bumping terms.
				return nil
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// A pre-vote request never changes our term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote carries the term we would campaign in; we
			// move to it only by winning the pre-vote and campaigning.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			r.becomeFollower(m.Term, m.From)
		default:
			r.becomeFollower(m.Term, None)
		}
	case m.Term < r.term:
		switch {
		case (r.checkQuorum || r.preVote) && (m.Type == MsgHeartbeat || m.Type == MsgApp):
			// A stale leader is told the current term so that it steps down.
			// Without this, with CheckQuorum or PreVote, a leader cut off
			// and reconnected could be ignored forever (its heartbeats are
			// dropped, its pre-votes rejected), leaving it lonely but
			// unaware.
			r.send(Message{To: m.From, Type: MsgAppResp})
		case m.Type == MsgPreVote:
			r.send(Message{To: m.From, Type: MsgPreVoteResp, Term: r.term, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		r.handleVote(m)
		return nil
	}
	return r.step(r, m)
}

// handleVote answers a (pre-)vote request for the current or a future term.
func (r *raft) handleVote(m Message) {
	canVote := r.vote == m.From ||
		(r.vote == None && r.lead == None) ||
		(m.Type == MsgPreVote && m.Term > r.term)
	respType := MsgVoteResp
	if m.Type == MsgPreVote {
		respType = MsgPreVoteResp
	}
	// Election restriction (§5.4.1): only a candidate whose log is at least
	// as up to date as ours may get our vote.
	if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
		r.send(Message{To: m.From, Type: respType, Term: m.Term})
		if m.Type == MsgVote {
			r.electionElapsed = 0
			r.vote = m.From
		}
		return
	}
	r.send(Message{To: m.From, Type: respType, Term: r.term, Reject: true})
}

func tickElection(r *raft) {
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.holdVotes = false
	}
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.hup(campaignElection)
	}
}

func tickHeartbeat(r *raft) {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.electionElapsed = 0
		if r.checkQuorum {
			if !r.trk.quorumActive(r.id) {
				// §6.2: a leader that cannot reach a quorum steps down, so
				// that clients go looking for the real one.
				r.becomeFollower(r.term, None)
				return
			}
			r.trk.visit(func(id NodeID, pr *Progress) {
				if id != r.id {
					pr.RecentActive = false
				}
			})
		}
	}
	if r.leadTransferee != None {
		r.transferElapsed++
		if r.transferElapsed >= r.electionTimeout {
			// A transfer that did not finish within an election timeout is
			// abandoned (§3.10), so proposals flow again.
			r.leadTransferee = None
		}
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout {
		r.heartbeatElapsed = 0
		if r.readOnly.option == ReadOnlyLeaseBased {
			// A round of its own, so that its acknowledgments renew the
			// lease (and confirm any reads queued before it).
			r.bcastHeartbeat(r.readOnly.nextRound())
		} else {
			r.bcastHeartbeat(nil)
		}
	}
}

// validateMessage rejects malformed network input before it reaches the
// protocol, so that a confused or hostile peer cannot crash the node.
func validateMessage(m *Message) error {
	if !m.Type.Valid() {
		return fmt.Errorf("raft: unknown message type %d", m.Type)
	}
	if m.From == None {
		return fmt.Errorf("raft: %s without a sender", m.Type)
	}
	// Forwarded requests are the only term-less messages (see send), with
	// one exception: a pre-vote rejection carries the voter's term, which
	// is 0 for a node that has not seen a term yet (a pre-vote changes no
	// term). A term-less append or vote would bypass the term checks of
	// Step: a MsgApp of term 0 could replace uncommitted entries with
	// entries of term 0 and install its sender as leader.
	switch m.Type {
	case MsgProp, MsgReadIndex, MsgTransferLeader:
		if m.Term != 0 {
			return fmt.Errorf("raft: forwarded %s from %d carries term %d, want none", m.Type, m.From, m.Term)
		}
	case MsgPreVoteResp:
		if m.Term == 0 && !m.Reject {
			return fmt.Errorf("raft: %s from %d grants a pre-vote without a term", m.Type, m.From)
		}
	default:
		if m.Term == 0 {
			return fmt.Errorf("raft: %s from %d without a term", m.Type, m.From)
		}
	}
	switch m.Type {
	case MsgApp:
		for i := range m.Entries {
			e := &m.Entries[i]
			if e.Index != m.Index+1+Index(i) {
				return fmt.Errorf("raft: MsgApp from %d: entry %d has index %d, want %d", m.From, i, e.Index, m.Index+1+Index(i))
			}
			if e.Term > m.Term || e.Term < m.LogTerm || (i > 0 && e.Term < m.Entries[i-1].Term) {
				return fmt.Errorf("raft: MsgApp from %d: entry %d has term %d out of order", m.From, e.Index, e.Term)
			}
		}
	case MsgSnap:
		if m.Snapshot == nil || m.Snapshot.Meta.Index == 0 {
			return fmt.Errorf("raft: MsgSnap from %d carries no snapshot", m.From)
		}
		if m.Snapshot.Meta.ConfState.IsEmpty() {
			return fmt.Errorf("raft: MsgSnap from %d carries a snapshot without membership", m.From)
		}
	case MsgProp:
		if len(m.Entries) == 0 {
			return fmt.Errorf("raft: MsgProp from %d carries no entries", m.From)
		}
	case MsgTransferLeader:
		if len(m.Context) != 8 {
			return fmt.Errorf("raft: MsgTransferLeader from %d does not name a target", m.From)
		}
	}
	return nil
}

func encodeNodeID(id NodeID) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(id)) }

func decodeNodeID(b []byte) NodeID {
	if len(b) != 8 {
		return None
	}
	return NodeID(binary.LittleEndian.Uint64(b))
}
