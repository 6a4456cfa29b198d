package raft

import "fmt"

// Term is a Raft term number (§5.1). Terms only grow.
type Term uint64

// Index is the position of an entry in the replicated log. The first entry
// has index 1; index 0 means "none".
type Index uint64

// NodeID identifies a replica. Zero means "no node".
type NodeID uint64

// None is the zero NodeID: no leader known, no vote cast.
const None NodeID = 0

// EntryType tells the runtime how to interpret an entry's Data.
type EntryType uint8

const (
	// EntryNormal carries a user command, or nothing (the no-op a new leader
	// appends at the start of its term).
	EntryNormal EntryType = iota
	// EntryConfChange carries an encoded membership change.
	EntryConfChange
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "Normal"
	case EntryConfChange:
		return "ConfChange"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
type Entry struct {
	Term  Term
	Index Index
	Type  EntryType
	Data  []byte
}

// size is the entry's contribution to byte limits (payload plus a fixed
// overhead, so that empty entries are not free).
func (e *Entry) size() uint64 { return uint64(len(e.Data)) + entryOverhead }

// entryOverhead approximates the framing cost of an entry.
const entryOverhead = 24

// HardState is the state that must be durable before a node answers anything
// that depends on it (§5, Figure 2, "persistent state on all servers").
type HardState struct {
	Term   Term
	Vote   NodeID
	Commit Index
}

// IsEmpty reports whether h is the zero HardState.
func (h HardState) IsEmpty() bool { return h == HardState{} }

// ConfState is the membership of the cluster as of some log index.
//
// Outside a joint configuration VotersOutgoing is empty. During a joint
// configuration (§4.3) decisions need a majority of Voters and a majority of
// VotersOutgoing; LearnersNext lists nodes that are voters in the outgoing
// configuration and become learners when the joint configuration is left.
type ConfState struct {
	Voters         []NodeID
	Learners       []NodeID
	VotersOutgoing []NodeID
	LearnersNext   []NodeID
}

// IsEmpty reports whether the configuration has no members at all.
func (c ConfState) IsEmpty() bool {
	return len(c.Voters) == 0 && len(c.Learners) == 0 && len(c.VotersOutgoing) == 0 && len(c.LearnersNext) == 0
}

// Clone returns a deep copy of c.
func (c ConfState) Clone() ConfState {
	cp := func(s []NodeID) []NodeID {
		if s == nil {
			return nil
		}
		return append([]NodeID(nil), s...)
	}
	return ConfState{Voters: cp(c.Voters), Learners: cp(c.Learners), VotersOutgoing: cp(c.VotersOutgoing), LearnersNext: cp(c.LearnersNext)}
}

// SnapshotMeta describes the log prefix a snapshot replaces.
type SnapshotMeta struct {
	Index     Index // last log index covered by the snapshot
	Term      Term  // term of the entry at Index
	ConfState ConfState
}

// Snapshot is a state machine image plus the metadata that places it in the
// log. Data is opaque to raft.
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// IsEmpty reports whether s is the zero snapshot.
func (s *Snapshot) IsEmpty() bool { return s == nil || s.Meta.Index == 0 }

// MessageType enumerates the messages replicas exchange.
type MessageType uint8

const (
	// MsgProp carries proposals from a follower to the leader.
	MsgProp MessageType = iota + 1
	// MsgApp is AppendEntries (§5.3): Index/LogTerm name the entry preceding
	// Entries, Commit is the leader's commit index.
	MsgApp
	// MsgAppResp answers MsgApp. On success Index is the last index the
	// follower now matches. On reject, Index echoes the rejected MsgApp's
	// Index and RejectHint/LogTerm carry the conflict hint (§5.3, "fast
	// backtracking").
	MsgAppResp
	// MsgVote is RequestVote (§5.2); Index/LogTerm describe the candidate's
	// last entry.
	MsgVote
	MsgVoteResp
	// MsgPreVote asks whether a vote would be granted, without anyone changing
	// term (§9.6). Term is the term the sender would campaign in.
	MsgPreVote
	MsgPreVoteResp
	// MsgHeartbeat asserts leadership and carries the commit index (bounded by
	// what the follower is known to match) and an optional read context.
	MsgHeartbeat
	MsgHeartbeatResp
	// MsgSnap carries a snapshot to a follower that needs compacted entries.
	MsgSnap
	// MsgTimeoutNow tells the transfer target to campaign at once (§3.10).
	MsgTimeoutNow
	// MsgReadIndex forwards a read request from a follower to the leader;
	// Context identifies the request.
	MsgReadIndex
	// MsgReadIndexResp returns the read index (in Index) for Context.
	MsgReadIndexResp
	// MsgTransferLeader forwards a transfer request to the leader; Context
	// holds the transfer target (8 bytes, little-endian), From the node that
	// forwarded the request.
	MsgTransferLeader
	maxMessageType
)

var messageTypeNames = [...]string{
	MsgProp:           "MsgProp",
	MsgApp:            "MsgApp",
	MsgAppResp:        "MsgAppResp",
	MsgVote:           "MsgVote",
	MsgVoteResp:       "MsgVoteResp",
	MsgPreVote:        "MsgPreVote",
	MsgPreVoteResp:    "MsgPreVoteResp",
	MsgHeartbeat:      "MsgHeartbeat",
	MsgHeartbeatResp:  "MsgHeartbeatResp",
	MsgSnap:           "MsgSnap",
	MsgTimeoutNow:     "MsgTimeoutNow",
	MsgReadIndex:      "MsgReadIndex",
	MsgReadIndexResp:  "MsgReadIndexResp",
	MsgTransferLeader: "MsgTransferLeader",
}

func (t MessageType) String() string {
	if t > 0 && t < maxMessageType {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Valid reports whether t is a known message type.
func (t MessageType) Valid() bool { return t > 0 && t < maxMessageType }

// Message is the unit of communication between replicas. Which fields mean
// something depends on Type (see the MessageType constants).
type Message struct {
	Type       MessageType
	From       NodeID
	To         NodeID
	Term       Term
	LogTerm    Term
	Index      Index
	Commit     Index
	Reject     bool
	RejectHint Index
	Entries    []Entry
	Snapshot   *Snapshot
	Context    []byte
}

func isResponse(t MessageType) bool {
	switch t {
	case MsgAppResp, MsgVoteResp, MsgPreVoteResp, MsgHeartbeatResp, MsgReadIndexResp:
		return true
	}
	return false
}
