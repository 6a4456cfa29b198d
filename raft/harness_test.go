package raft

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// cluster is an in-memory cluster for tests: real nodes over MemoryStorage,
// a message queue instead of a network, and a recorded apply stream per node.
// It plays the runtime's part exactly as doc.go describes it: send SendNow,
// persist, send SendAfterPersist, apply, Advance.
type cluster struct {
	ids      []NodeID
	nodes    map[NodeID]*Node
	storage  map[NodeID]*MemoryStorage
	applied  map[NodeID][]Entry
	reads    map[NodeID][]ReadState
	inflight []Message
	// cut[from][to] drops messages on that link.
	cut map[NodeID]map[NodeID]bool
	// configure adjusts each node's Config before it starts.
	configure func(*Config)
	// dropTypes drops every message of these types.
	dropTypes map[MessageType]bool
	// drop, if set, drops the messages it returns true for.
	drop  func(Message) bool
	trace *strings.Builder
	// onReady, if set, sees every Ready before it is handled.
	onReady func(id NodeID, rd Ready)
	// discardApplied skips recording the apply streams (benchmarks).
	discardApplied bool
	// stepErrs records errors from Step other than ErrProposalDropped and
	// ErrEntryTooLarge, which a forwarded request may legitimately cause.
	stepErrs []error
	// clock is each node's Config.Now in lease mode: tickLength per Tick
	// (tickNode), plus whatever pause advances it without ticks.
	clock map[NodeID]int64
}

// tickLength is a tick's length on the harness clock; the lease lasts
// ElectionTicks-2 of them.
const tickLength = 1000

// tickNode ticks one node, advancing its clock by a tick.
func (c *cluster) tickNode(id NodeID) {
	if c.clock == nil {
		c.clock = map[NodeID]int64{}
	}
	c.clock[id] += tickLength
	c.nodes[id].Tick()
}

// pause advances a node's clock by n ticks without ticking it: the node
// was stopped (a GC pause, SIGSTOP, a VM migration) and missed them.
func (c *cluster) pause(id NodeID, n int) {
	if c.clock == nil {
		c.clock = map[NodeID]int64{}
	}
	c.clock[id] += int64(n) * tickLength
}

func newCluster(n int, configure func(*Config)) *cluster {
	c := &cluster{
		nodes:     map[NodeID]*Node{},
		storage:   map[NodeID]*MemoryStorage{},
		applied:   map[NodeID][]Entry{},
		reads:     map[NodeID][]ReadState{},
		cut:       map[NodeID]map[NodeID]bool{},
		configure: configure,
		dropTypes: map[MessageType]bool{},
		clock:     map[NodeID]int64{},
	}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, NodeID(i))
	}
	for _, id := range c.ids {
		ms := NewMemoryStorage()
		ms.SetConfState(ConfState{Voters: c.ids})
		c.storage[id] = ms
		c.start(id)
	}
	return c
}

// newClusterWithLogs starts a cluster whose node i begins with a stored log
// holding one entry per element of logs[i] (the element is the entry's
// term), a durable term of term and a durable commit index of commit.
func newClusterWithLogs(logs [][]Term, term Term, commit Index, configure func(*Config)) *cluster {
	c := &cluster{
		nodes:     map[NodeID]*Node{},
		storage:   map[NodeID]*MemoryStorage{},
		applied:   map[NodeID][]Entry{},
		reads:     map[NodeID][]ReadState{},
		cut:       map[NodeID]map[NodeID]bool{},
		configure: configure,
		dropTypes: map[MessageType]bool{},
		clock:     map[NodeID]int64{},
	}
	for i := range logs {
		c.ids = append(c.ids, NodeID(i+1))
	}
	for i, id := range c.ids {
		ms := NewMemoryStorage()
		ms.SetConfState(ConfState{Voters: c.ids})
		ents := make([]Entry, len(logs[i]))
		for k, t := range logs[i] {
			ents[k] = Entry{Index: Index(k + 1), Term: t, Data: []byte(fmt.Sprintf("%d/%d", k+1, t))}
		}
		if err := ms.Append(ents); err != nil {
			panic(err)
		}
		ms.SetHardState(HardState{Term: term, Commit: min(commit, Index(len(ents)))})
		c.storage[id] = ms
		c.start(id)
	}
	return c
}

// terms returns n copies of t, for building logs.
func terms(t Term, n int) []Term {
	out := make([]Term, n)
	for i := range out {
		out[i] = t
	}
	return out
}

// take removes and returns the messages in flight that match f.
func (c *cluster) take(f func(Message) bool) []Message {
	var out, keep []Message
	for _, m := range c.inflight {
		if f(m) {
			out = append(out, m)
		} else {
			keep = append(keep, m)
		}
	}
	c.inflight = keep
	return out
}

func (c *cluster) config(id NodeID) Config {
	cfg := Config{ID: id, Storage: c.storage[id], ElectionTicks: 10, HeartbeatTicks: 1, Seed: uint64(id)}
	if c.configure != nil {
		c.configure(&cfg)
	}
	if cfg.ReadOnly == ReadOnlyLeaseBased && cfg.Now == nil {
		cfg.Now = func() int64 { return c.clock[id] }
		cfg.LeaseDuration = int64(cfg.ElectionTicks-2) * tickLength
	}
	return cfg
}

func (c *cluster) start(id NodeID) {
	cfg := c.config(id)
	var applied Index
	if k := len(c.applied[id]); k > 0 {
		applied = c.applied[id][k-1].Index
	}
	// A runtime restarting with a durable snapshot newer than its state
	// machine restores the state machine from it: raft starts with the
	// snapshot applied.
	if snap, _ := c.storage[id].Snapshot(); snap.Meta.Index > applied {
		applied = snap.Meta.Index
		c.applied[id] = append(c.applied[id], Entry{Index: snap.Meta.Index, Term: snap.Meta.Term, Data: []byte("<snapshot>")})
	}
	cfg.Applied = applied
	n, err := NewNode(cfg)
	if err != nil {
		panic(err)
	}
	c.nodes[id] = n
}

// restart simulates a crash and restart: volatile state is lost, storage
// (everything persisted) survives, and so does the state machine (the
// recorded apply stream), which the restarted node is told about through
// Config.Applied.
func (c *cluster) restart(id NodeID) {
	c.start(id)
}

func (c *cluster) logf(format string, args ...any) {
	if c.trace != nil {
		fmt.Fprintf(c.trace, format+"\n", args...)
	}
}

// process handles one Ready of node id, as a runtime would.
func (c *cluster) process(id NodeID) bool {
	n := c.nodes[id]
	if !n.HasReady() {
		return false
	}
	rd := n.Ready()
	if c.onReady != nil {
		c.onReady(id, rd)
	}
	if c.trace != nil {
		c.traceReady(id, rd)
	}
	c.send(rd.SendNow)
	c.persist(id, rd)
	c.send(rd.SendAfterPersist)
	c.apply(id, rd)
	n.Advance(rd)
	return true
}

// traceReady records what a Ready changes that messages do not show.
func (c *cluster) traceReady(id NodeID, rd Ready) {
	if ss := rd.SoftState; ss != nil {
		c.logf("%d: %s (term %d, lead %d)", id, ss.Role, c.nodes[id].r.term, ss.Lead)
	}
	if rd.Snapshot != nil {
		c.logf("%d: install snapshot %d/%d", id, rd.Snapshot.Meta.Index, rd.Snapshot.Meta.Term)
	}
	if len(rd.CommittedEntries) > 0 {
		c.logf("%d: apply %s", id, describeEntries(rd.CommittedEntries))
	}
	for _, rs := range rd.ReadStates {
		c.logf("%d: read %s at %d", id, rs.RequestCtx, rs.Index)
	}
}

func (c *cluster) persist(id NodeID, rd Ready) {
	ms := c.storage[id]
	if rd.Snapshot != nil {
		if err := ms.ApplySnapshot(*rd.Snapshot); err != nil {
			panic(err)
		}
	}
	if err := ms.Append(rd.Entries); err != nil {
		panic(err)
	}
	if !rd.HardState.IsEmpty() {
		ms.SetHardState(rd.HardState)
	}
}

func (c *cluster) apply(id NodeID, rd Ready) {
	if c.discardApplied {
		return // nor the reads
	}
	if rd.Snapshot != nil {
		c.applied[id] = append(c.applied[id], Entry{Index: rd.Snapshot.Meta.Index, Term: rd.Snapshot.Meta.Term, Data: []byte("<snapshot>")})
	}
	c.applied[id] = append(c.applied[id], rd.CommittedEntries...)
	c.reads[id] = append(c.reads[id], rd.ReadStates...)
}

func (c *cluster) send(msgs []Message) {
	for _, m := range msgs {
		if c.cut[m.From][m.To] || c.dropTypes[m.Type] || (c.drop != nil && c.drop(m)) {
			if c.trace != nil {
				c.logf("drop %s", describeMessage(m))
			}
			if m.Type == MsgSnap {
				// The transport tells raft a snapshot did not get through.
				c.nodes[m.From].ReportSnapshot(m.To, false)
			}
			continue
		}
		c.inflight = append(c.inflight, m)
	}
}

// stepOne delivers m to its destination.
func (c *cluster) stepOne(m Message) {
	if c.trace != nil {
		c.logf("%s", describeMessage(m))
	}
	err := c.nodes[m.To].Step(m)
	if err != nil && !errors.Is(err, ErrProposalDropped) && !errors.Is(err, ErrEntryTooLarge) {
		c.stepErrs = append(c.stepErrs, fmt.Errorf("%s: %w", describeMessage(m), err))
	}
	if m.Type == MsgSnap {
		c.nodes[m.From].ReportSnapshot(m.To, true)
	}
}

// deliver hands every message in flight to its destination once.
func (c *cluster) deliver() bool {
	msgs := c.inflight
	c.inflight = nil
	for _, m := range msgs {
		c.stepOne(m)
	}
	return len(msgs) > 0
}

// stabilize runs Ready processing and delivery until nothing is left.
func (c *cluster) stabilize() {
	for i := 0; i < 10000; i++ {
		progress := false
		for _, id := range c.ids {
			for c.process(id) {
				progress = true
			}
		}
		if c.deliver() {
			progress = true
		}
		if !progress {
			if len(c.stepErrs) > 0 {
				panic(fmt.Sprintf("step errors: %v", c.stepErrs))
			}
			return
		}
	}
	panic("cluster did not stabilize")
}

func (c *cluster) tick(id NodeID, n int) {
	for i := 0; i < n; i++ {
		c.tickNode(id)
	}
}

// tickAll ticks every node n times, stabilizing after each round.
func (c *cluster) tickAll(n int) {
	for i := 0; i < n; i++ {
		for _, id := range c.ids {
			c.tickNode(id)
		}
		c.stabilize()
	}
}

func (c *cluster) isolate(id NodeID) {
	for _, o := range c.ids {
		if o == id {
			continue
		}
		c.cutLink(id, o)
		c.cutLink(o, id)
	}
}

func (c *cluster) cutLink(from, to NodeID) {
	if c.cut[from] == nil {
		c.cut[from] = map[NodeID]bool{}
	}
	c.cut[from][to] = true
}

func (c *cluster) heal() { c.cut = map[NodeID]map[NodeID]bool{} }

// leader returns the leader of the highest term, or None.
func (c *cluster) leader() NodeID {
	var lead NodeID
	for _, id := range c.ids {
		if c.nodes[id].r.role == RoleLeader {
			if lead == None || c.nodes[id].r.term > c.nodes[lead].r.term {
				lead = id
			}
		}
	}
	return lead
}

func (c *cluster) campaign(id NodeID) {
	c.nodes[id].Campaign()
	c.stabilize()
}

func (c *cluster) propose(id NodeID, data string) error {
	err := c.nodes[id].Propose([]byte(data))
	c.stabilize()
	return err
}

// appliedData returns the non-empty commands node id applied, in order.
func (c *cluster) appliedData(id NodeID) []string {
	var out []string
	for _, e := range c.applied[id] {
		if len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}

// compact snapshots node id's storage at index i and drops the log before
// it, as the runtime does once the state machine has applied i.
func (c *cluster) compact(id NodeID, i Index) error {
	ms := c.storage[id]
	cs := c.nodes[id].Status().Config
	if _, err := ms.CreateSnapshot(i, cs, []byte(fmt.Sprintf("snap@%d", i))); err != nil {
		return err
	}
	return ms.Compact(i)
}

// storedLog returns node id's persisted entries (after its snapshot).
func (c *cluster) storedLog(id NodeID) []Entry {
	ms := c.storage[id]
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	ents, err := ms.Entries(first, last+1, 0)
	if err != nil {
		panic(err)
	}
	return ents
}

func describeEntries(ents []Entry) string {
	parts := make([]string, len(ents))
	for i, e := range ents {
		parts[i] = fmt.Sprintf("%d/%d", e.Index, e.Term)
		if len(e.Data) > 0 {
			parts[i] += ":" + string(e.Data)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func describeMessage(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgApp:
		fmt.Fprintf(&b, " prev=%d/%d commit=%d", m.Index, m.LogTerm, m.Commit)
		if len(m.Entries) > 0 {
			fmt.Fprintf(&b, " ents=%s", describeEntries(m.Entries))
		}
	case MsgAppResp:
		fmt.Fprintf(&b, " index=%d", m.Index)
		if m.Reject {
			fmt.Fprintf(&b, " reject hint=%d/%d", m.RejectHint, m.LogTerm)
		}
	case MsgVote, MsgPreVote:
		fmt.Fprintf(&b, " last=%d/%d", m.Index, m.LogTerm)
		if len(m.Context) > 0 {
			fmt.Fprintf(&b, " ctx=%s", m.Context)
		}
	case MsgVoteResp, MsgPreVoteResp:
		if m.Reject {
			b.WriteString(" reject")
		}
	case MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d", m.Commit)
		if len(m.Context) > 0 {
			fmt.Fprintf(&b, " ctx=%x", m.Context)
		}
	case MsgHeartbeatResp:
		if len(m.Context) > 0 {
			fmt.Fprintf(&b, " ctx=%x", m.Context)
		}
	case MsgSnap:
		fmt.Fprintf(&b, " snap=%d/%d", m.Snapshot.Meta.Index, m.Snapshot.Meta.Term)
	case MsgReadIndex, MsgReadIndexResp:
		fmt.Fprintf(&b, " index=%d ctx=%s", m.Index, m.Context)
	case MsgProp:
		fmt.Fprintf(&b, " ents=%s", describeEntries(m.Entries))
	case MsgTransferLeader:
		fmt.Fprintf(&b, " to=%d", decodeNodeID(m.Context))
	}
	return b.String()
}

// describeNode is a one-line summary of a node's state for golden output,
// followed by the leader's view of each follower.
func describeNode(n *Node) string {
	st := n.Status()
	s := fmt.Sprintf("%d: %s term=%d vote=%d lead=%d commit=%d applied=%d first=%d last=%d",
		st.ID, st.Role, st.Term, st.Vote, st.Lead, st.Commit, st.Applied, st.FirstIndex, st.LastIndex)
	if st.LeadTransferee != None {
		s += fmt.Sprintf(" transferee=%d", st.LeadTransferee)
	}
	if st.Progress != nil {
		ids := make([]NodeID, 0, len(st.Progress))
		for id := range st.Progress {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if id == st.ID {
				continue
			}
			pr := st.Progress[id]
			s += fmt.Sprintf("\n   %d: %s", id, pr.String())
		}
	}
	return s
}
