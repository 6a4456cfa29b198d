package raft

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestConfigValidate checks that every invalid Config is refused with an
// error naming the field, and that the zero optional fields get defaults.
func TestConfigValidate(t *testing.T) {
	ms := NewMemoryStorage()
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"valid zero options", Config{ID: 1, Storage: ms}, ""},
		{"no ID", Config{Storage: ms}, "ID must not be zero"},
		{"no storage", Config{ID: 1}, "Storage is required"},
		{"negative heartbeat", Config{ID: 1, Storage: ms, HeartbeatTicks: -1}, "HeartbeatTicks -1"},
		{"election not above heartbeat", Config{ID: 1, Storage: ms, ElectionTicks: 3, HeartbeatTicks: 3}, "ElectionTicks 3 must exceed HeartbeatTicks 3"},
		{"negative inflight", Config{ID: 1, Storage: ms, MaxInflightMsgs: -2}, "MaxInflightMsgs -2"},
		{"inflight bytes below message size", Config{ID: 1, Storage: ms, MaxBytesPerMsg: 100, MaxInflightBytes: 50}, "MaxInflightBytes 50 is below MaxBytesPerMsg 100"},
		{"lease without check quorum", Config{ID: 1, Storage: ms, ReadOnly: ReadOnlyLeaseBased}, "require CheckQuorum"},
		{"unknown read option", Config{ID: 1, Storage: ms, ReadOnly: 7}, "unknown ReadOnly option 7"},
		{"lease without a clock", Config{ID: 1, Storage: ms, ReadOnly: ReadOnlyLeaseBased, CheckQuorum: true, LeaseDuration: 1}, "require a clock (Now)"},
		{"lease without a duration", Config{ID: 1, Storage: ms, ReadOnly: ReadOnlyLeaseBased, CheckQuorum: true, Now: func() int64 { return 0 }}, "positive LeaseDuration, not 0"},
		{"lease with check quorum, clock and duration", Config{ID: 1, Storage: ms, ReadOnly: ReadOnlyLeaseBased, CheckQuorum: true, Now: func() int64 { return 0 }, LeaseDuration: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "raft: ") {
				t.Fatalf("got %v, want an error prefixed raft: containing %q", err, tt.want)
			}
			if _, err := NewNode(tt.cfg); err == nil {
				t.Fatalf("NewNode accepted the invalid config")
			}
		})
	}
	cfg := Config{ID: 1, Storage: ms}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{ID: 1, Storage: ms, ElectionTicks: 10, HeartbeatTicks: 1, MaxBytesPerMsg: 1 << 20, MaxInflightMsgs: 256,
		MaxUncommittedBytes: 64 << 20, MaxEntryBytes: 8 << 20, MaxApplyBytesPerReady: 16 << 20}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults: got %+v, want %+v", cfg, want)
	}
}

// TestStepRefusesMalformedMessages: a message no honest peer sends is
// refused by Node.Step with an error, never a panic, and changes nothing.
func TestStepRefusesMalformedMessages(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"unknown type", Message{Type: 0, From: 1, To: 2, Term: 1}, "unknown message type"},
		{"type past the last", Message{Type: maxMessageType, From: 1, To: 2, Term: 1}, "unknown message type"},
		{"no sender", Message{Type: MsgHeartbeat, To: 2, Term: 1}, "without a sender"},
		{"wrong recipient", Message{Type: MsgHeartbeat, From: 1, To: 3, Term: 1}, "addressed to 3"},
		{"append with an index gap", Message{Type: MsgApp, From: 1, To: 2, Term: 1, Index: 0, Entries: []Entry{{Index: 2, Term: 1}}}, "has index 2, want 1"},
		{"append with an entry of a later term", Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: []Entry{{Index: 1, Term: 2}}}, "out of order"},
		{"append with decreasing terms", Message{Type: MsgApp, From: 1, To: 2, Term: 3, Entries: []Entry{{Index: 1, Term: 2}, {Index: 2, Term: 1}}}, "out of order"},
		{"append with an entry before its predecessor's term", Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 0, LogTerm: 2, Entries: []Entry{{Index: 1, Term: 1}}}, "out of order"},
		{"append without a term", Message{Type: MsgApp, From: 1, To: 2, Entries: []Entry{{Index: 1}}}, "without a term"},
		{"heartbeat without a term", Message{Type: MsgHeartbeat, From: 1, To: 2, Commit: 1}, "without a term"},
		{"vote without a term", Message{Type: MsgVote, From: 1, To: 2}, "without a term"},
		{"snapshot message without a snapshot", Message{Type: MsgSnap, From: 1, To: 2, Term: 1}, "carries no snapshot"},
		{"snapshot without membership", Message{Type: MsgSnap, From: 1, To: 2, Term: 1, Snapshot: &Snapshot{Meta: SnapshotMeta{Index: 5, Term: 1}}}, "without membership"},
		{"proposal without entries", Message{Type: MsgProp, From: 1, To: 2}, "carries no entries"},
		{"forwarded proposal with a term", Message{Type: MsgProp, From: 1, To: 2, Term: 4, Entries: []Entry{{}}}, "carries term 4"},
		{"transfer without a target", Message{Type: MsgTransferLeader, From: 1, To: 2, Context: []byte{1}}, "does not name a target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(3, nil)
			n := c.nodes[2]
			before := describeNode(n)
			err := n.Step(tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if after := describeNode(n); after != before || n.HasReady() {
				t.Fatalf("state after a refused message: got %s (HasReady %v), want %s unchanged", after, n.HasReady(), before)
			}
		})
	}
}

// TestStaleAppendNeverTouchesCommittedPrefix (§5.3, §5.4): an append that
// starts before the follower's commit index — a stale or reordered one, or
// one from a broken peer that conflicts with committed entries — changes
// nothing below the commit index; the follower answers with its commit
// index so the leader can resume from there.
func TestStaleAppendNeverTouchesCommittedPrefix(t *testing.T) {
	c := newClusterWithLogs([][]Term{{1, 1}, {1, 1, 1}, {1}}, 1, 2, nil)
	n := c.nodes[2]
	if err := n.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: 2}}}); err != nil {
		t.Fatal(err)
	}
	if got := n.r.log.termOrZero(2); got != 1 {
		t.Fatalf("committed entry 2: got term %d, want 1", got)
	}
	rd := n.Ready()
	ack := findMsg(rd.SendAfterPersist, MsgAppResp)
	if ack == nil || ack.Reject || ack.Index != 2 {
		t.Fatalf("answer to a stale append: got %v, want an acknowledgment of the commit index 2", rd.SendAfterPersist)
	}
}

// TestStepIgnoresResponsesFromStrangers: a response from a node outside the
// configuration changes nothing.
func TestStepIgnoresResponsesFromStrangers(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	n := c.nodes[1]
	if err := n.Step(Message{Type: MsgAppResp, From: 9, To: 1, Term: 1, Index: 100}); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if n.HasReady() {
		t.Fatalf("a stranger's response produced work")
	}
}

// TestPersistenceContract (doc.go, "The persistence contract"; Figure 2
// "respond to RPCs only after updating stable storage"): a candidate's vote
// requests, a voter's grants and a follower's append acknowledgments are in
// SendAfterPersist; a leader's appends go in SendNow only once its term's
// vote is durable.
func TestPersistenceContract(t *testing.T) {
	c := newCluster(3, nil)
	n1, n2 := c.nodes[1], c.nodes[2]
	n1.Campaign()
	rd := n1.Ready()
	if len(rd.SendNow) != 0 || len(rd.SendAfterPersist) != 2 || findMsg(rd.SendAfterPersist, MsgVote) == nil {
		t.Fatalf("candidate: got SendNow %v, SendAfterPersist %v; want the two vote requests after persisting", rd.SendNow, rd.SendAfterPersist)
	}
	if rd.HardState.Term != 1 || rd.HardState.Vote != 1 || !rd.MustSync {
		t.Fatalf("candidate hard state: got %+v (sync %v), want term 1 vote 1 synced", rd.HardState, rd.MustSync)
	}
	c.persist(1, rd)
	n1.Advance(rd)
	if err := n2.Step(rd.SendAfterPersist[0]); err != nil {
		t.Fatal(err)
	}
	rd2 := n2.Ready()
	if len(rd2.SendNow) != 0 || findMsg(rd2.SendAfterPersist, MsgVoteResp) == nil || rd2.HardState.Vote != 1 || !rd2.MustSync {
		t.Fatalf("voter: got SendNow %v, SendAfterPersist %v, hard state %+v; want the grant after persisting vote 1", rd2.SendNow, rd2.SendAfterPersist, rd2.HardState)
	}
	c.persist(2, rd2)
	n2.Advance(rd2)
	if err := n1.Step(*findMsg(rd2.SendAfterPersist, MsgVoteResp)); err != nil {
		t.Fatal(err)
	}
	// Leader of term 1, whose vote is durable: its appends may go at once,
	// before the no-op is durable.
	rd = n1.Ready()
	if findMsg(rd.SendNow, MsgApp) == nil || len(rd.SendAfterPersist) != 0 || len(rd.Entries) != 1 {
		t.Fatalf("new leader: got SendNow %v, SendAfterPersist %v, entries %v; want appends in SendNow and the no-op to persist", rd.SendNow, rd.SendAfterPersist, rd.Entries)
	}
	// Its own unpersisted no-op does not count towards the commit index.
	app := *findMsg(rd.SendNow, MsgApp)
	if err := n2.Step(app); err != nil {
		t.Fatal(err)
	}
	rd2 = n2.Ready()
	ack := findMsg(rd2.SendAfterPersist, MsgAppResp)
	if ack == nil || len(rd2.SendNow) != 0 {
		t.Fatalf("follower: got SendNow %v, SendAfterPersist %v; want the acknowledgment after persisting", rd2.SendNow, rd2.SendAfterPersist)
	}
	if err := n1.Step(*ack); err != nil {
		t.Fatal(err)
	}
	// 2 of 3 hold the no-op now (2 and, once durable, 1): one is enough
	// with the follower, so the commit does not wait for Advance here. What
	// must hold is that the leader alone never commits without its disk:
	c1 := newCluster(1, nil)
	c1.nodes[1].Campaign()
	rd = c1.nodes[1].Ready()
	if rd.HardState.Commit != 0 || len(rd.CommittedEntries) != 0 {
		t.Fatalf("single node before persisting: got commit %d, committed %v; want nothing committed", rd.HardState.Commit, rd.CommittedEntries)
	}
	c1.persist(1, rd)
	c1.nodes[1].Advance(rd)
	rd = c1.nodes[1].Ready()
	if rd.HardState.Commit != 1 || len(rd.CommittedEntries) != 1 {
		t.Fatalf("single node after persisting: got commit %d, committed %v; want the no-op committed", rd.HardState.Commit, rd.CommittedEntries)
	}
	c1.nodes[1].Advance(rd)
}

// TestPersistenceContractLeaderStepDownMovesMessages: messages queued while
// leader are held back with the new term's hard state once it steps down
// in the same Ready.
func TestPersistenceContractLeaderStepDownMovesMessages(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	n := c.nodes[1]
	if err := n.Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := n.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Term: 5}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.SendNow) != 0 {
		t.Fatalf("after stepping down to term 5: got SendNow %v, want nothing sent before term 5 is durable", rd.SendNow)
	}
	n.Advance(rd)
}

// TestReadyAdvanceMisuse: Ready twice without Advance, or Advance without
// Ready, is a programming error and panics.
func TestReadyAdvanceMisuse(t *testing.T) {
	c := newCluster(1, nil)
	n := c.nodes[1]
	mustPanic(t, "Advance without Ready", func() { n.Advance(Ready{}) })
	n.Campaign()
	rd := n.Ready()
	if n.HasReady() {
		t.Fatalf("HasReady with a Ready pending: got true, want false")
	}
	mustPanic(t, "Ready twice", func() { n.Ready() })
	n.Advance(rd)
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s: got no panic, want one", what)
		}
	}()
	f()
}

// TestProposeNothing: an empty Propose is refused.
func TestProposeNothing(t *testing.T) {
	c := newCluster(1, nil)
	if err := c.nodes[1].Propose(); err == nil {
		t.Fatalf("got nil, want an error")
	}
}

// TestProposalForwarding: followers forward proposals to the leader unless
// forwarding is disabled; without a leader they refuse.
func TestProposalForwarding(t *testing.T) {
	c := newCluster(3, nil)
	if err := c.nodes[2].Propose([]byte("x")); err != ErrProposalDropped {
		t.Fatalf("follower without a leader: got %v, want ErrProposalDropped", err)
	}
	c.campaign(1)
	if err := c.propose(2, "fwd"); err != nil {
		t.Fatalf("forwarded: got %v, want nil", err)
	}
	if got := c.appliedData(1); len(got) != 1 || got[0] != "fwd" {
		t.Fatalf("leader applied %q, want [fwd]", got)
	}
	c2 := newCluster(3, func(cfg *Config) { cfg.DisableProposalForwarding = true })
	c2.campaign(1)
	if err := c2.nodes[2].Propose([]byte("x")); err != ErrProposalDropped {
		t.Fatalf("forwarding disabled: got %v, want ErrProposalDropped", err)
	}
	// A candidate has no leader to forward to.
	c2.isolate(3)
	c2.nodes[3].Campaign()
	if err := c2.nodes[3].Propose([]byte("x")); err != ErrProposalDropped {
		t.Fatalf("candidate: got %v, want ErrProposalDropped", err)
	}
}

// TestStringers keeps the names used in logs and golden files stable.
func TestStringers(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{RoleFollower.String(), "Follower"}, {RolePreCandidate.String(), "PreCandidate"},
		{RoleCandidate.String(), "Candidate"}, {RoleLeader.String(), "Leader"}, {Role(9).String(), "Role(9)"},
		{EntryNormal.String(), "Normal"}, {EntryConfChange.String(), "ConfChange"}, {EntryType(7).String(), "EntryType(7)"},
		{MsgApp.String(), "MsgApp"}, {MessageType(99).String(), "MessageType(99)"},
		{StateProbe.String(), "StateProbe"}, {StateReplicate.String(), "StateReplicate"}, {StateSnapshot.String(), "StateSnapshot"},
		{ProgressState(9).String(), "ProgressState(9)"},
		{VotePending.String(), "VotePending"}, {VoteLost.String(), "VoteLost"}, {VoteWon.String(), "VoteWon"}, {VoteResult(0).String(), "VoteResult(?)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if n := (Node{r: &raft{id: 4}}); n.ID() != 4 {
		t.Errorf("ID: got %d, want 4", n.ID())
	}
}

// TestMaxApplyBytesPerReadyBoundsCommittedEntries: committed entries are
// handed out in Readys of at most MaxApplyBytesPerReady (at least one entry
// each), in order, none lost.
func TestMaxApplyBytesPerReadyBoundsCommittedEntries(t *testing.T) {
	c := newCluster(1, func(cfg *Config) { cfg.MaxApplyBytesPerReady = 3 * (10 + entryOverhead) })
	c.campaign(1)
	n := c.nodes[1]
	data := make([][]byte, 10)
	for i := range data {
		data[i] = []byte("0123456789")
	}
	if err := n.Propose(data...); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	c.persist(1, rd)
	n.Advance(rd)
	var sizes []int
	for n.HasReady() {
		rd := n.Ready()
		if len(rd.CommittedEntries) > 0 {
			sizes = append(sizes, len(rd.CommittedEntries))
		}
		c.persist(1, rd)
		c.apply(1, rd)
		n.Advance(rd)
	}
	if got, want := fmt.Sprint(sizes), "[3 3 3 1]"; got != want {
		t.Fatalf("committed entries per Ready: got %s, want %s", got, want)
	}
	if got := len(c.appliedData(1)); got != 10 {
		t.Fatalf("applied commands: got %d, want 10", got)
	}
}

// TestSameSeedSameRun: the core is deterministic (doc.go): the same inputs
// with the same Config.Seed produce the same outputs, message for message,
// which is what lets the simulator replay a run; another seed gives other
// election timeouts.
func TestSameSeedSameRun(t *testing.T) {
	run := func(seed uint64) string {
		c := newCluster(5, func(cfg *Config) { cfg.Seed = seed*100 + uint64(cfg.ID); cfg.PreVote = true })
		var trace strings.Builder
		c.trace = &trace
		for round := 0; round < 60; round++ {
			if round == 30 {
				c.isolate(c.leader())
			}
			c.tickAll(1)
			if lead := c.leader(); lead != None && round%7 == 0 {
				_ = c.propose(lead, fmt.Sprint(round))
			}
		}
		return trace.String()
	}
	a, b := run(1), run(1)
	if a != b {
		t.Fatalf("two runs with seed 1 differ: got %d and %d bytes of trace, want identical", len(a), len(b))
	}
	if c := run(2); c == a {
		t.Fatalf("runs with seeds 1 and 2: got identical traces, want different election timing")
	}
}

// TestPreVoteRejectionFromTermZeroAccepted: a node that has not seen any
// term yet rejects a pre-vote with its term, 0 (§9.6: a pre-vote changes no
// term). That term-less rejection is honest and must be counted, not
// refused as malformed. (Found by FuzzCluster, input ad70c5afa6626804.)
func TestPreVoteRejectionFromTermZeroAccepted(t *testing.T) {
	c := newCluster(3, withOptions(true, false))
	n := c.nodes[1]
	n.Campaign()
	if err := n.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 0, Reject: true}); err != nil {
		t.Fatalf("pre-vote rejection of term 0: got %v, want it accepted", err)
	}
	if err := n.Step(Message{Type: MsgPreVoteResp, From: 3, To: 1, Term: 0, Reject: true}); err != nil {
		t.Fatal(err)
	}
	if r := n.r; r.role != RoleFollower || r.term != 0 {
		t.Fatalf("after two rejections: got %s term %d, want Follower term 0 (pre-vote lost)", r.role, r.term)
	}
	if err := n.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1}); err == nil {
		t.Fatalf("term-less pre-vote grant: got accepted, want refused")
	}
}

// TestAccessorsAndProposeEntry: the cheap accessors agree with Status, and
// ProposeEntry keeps the entry's type through replication.
func TestAccessorsAndProposeEntry(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	if err := c.nodes[2].ProposeEntry(EntryConfChange, []byte("cc")); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	for _, id := range c.ids {
		n := c.nodes[id]
		// Node 1 won term 1; its no-op is entry 1 and the ConfChange entry 2.
		wantRole := RoleFollower
		if id == 1 {
			wantRole = RoleLeader
		}
		if n.LastIndex() != 2 || n.Leader() != 1 || n.Term() != 1 || n.Role() != wantRole {
			t.Fatalf("node %d accessors: got last %d lead %d term %d role %s, want last 2 lead 1 term 1 role %s", id, n.LastIndex(), n.Leader(), n.Term(), n.Role(), wantRole)
		}
		ents := c.applied[id]
		if e := ents[len(ents)-1]; e.Type != EntryConfChange || string(e.Data) != "cc" {
			t.Fatalf("node %d: last applied entry %+v, want the ConfChange entry cc", id, e)
		}
	}
}
