package raft

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// cluster is an in-memory cluster for tests: real nodes over MemoryStorage,
// a message queue instead of a network, and a recorded apply stream per node.
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
	trace     *strings.Builder
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

func (c *cluster) config(id NodeID) Config {
	cfg := Config{ID: id, Storage: c.storage[id], ElectionTicks: 10, HeartbeatTicks: 1, Seed: uint64(id)}
	if c.configure != nil {
		c.configure(&cfg)
	}
	return cfg
}

func (c *cluster) start(id NodeID) {
	cfg := c.config(id)
	if k := len(c.applied[id]); k > 0 {
		cfg.Applied = c.applied[id][k-1].Index
	}
	n, err := NewNode(cfg)
	if err != nil {
		panic(err)
	}
	c.nodes[id] = n
}

// restart simulates a crash and restart: volatile state is lost, storage
// (everything persisted) survives.
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
	ms := c.storage[id]
	c.send(rd.SendNow)
	if rd.Snapshot != nil {
		if err := ms.ApplySnapshot(*rd.Snapshot); err != nil {
			panic(err)
		}
		c.applied[id] = append(c.applied[id], Entry{Index: rd.Snapshot.Meta.Index, Term: rd.Snapshot.Meta.Term, Data: []byte("<snapshot>")})
	}
	if err := ms.Append(rd.Entries); err != nil {
		panic(err)
	}
	if !rd.HardState.IsEmpty() {
		ms.SetHardState(rd.HardState)
	}
	c.send(rd.SendAfterPersist)
	for _, e := range rd.CommittedEntries {
		c.applied[id] = append(c.applied[id], e)
	}
	c.reads[id] = append(c.reads[id], rd.ReadStates...)
	n.Advance(rd)
	return true
}

func (c *cluster) send(msgs []Message) {
	for _, m := range msgs {
		if c.cut[m.From][m.To] || c.dropTypes[m.Type] {
			c.logf("drop %s", describeMessage(m))
			continue
		}
		c.inflight = append(c.inflight, m)
	}
}

// deliver hands every message in flight to its destination once.
func (c *cluster) deliver() bool {
	msgs := c.inflight
	c.inflight = nil
	for _, m := range msgs {
		c.logf("%s", describeMessage(m))
		if err := c.nodes[m.To].Step(m); err != nil && err != ErrProposalDropped {
			panic(err)
		}
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
			return
		}
	}
	panic("cluster did not stabilize")
}

func (c *cluster) tick(id NodeID, n int) {
	for i := 0; i < n; i++ {
		c.nodes[id].Tick()
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

func describeMessage(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgApp:
		fmt.Fprintf(&b, " prev=%d/%d commit=%d", m.Index, m.LogTerm, m.Commit)
		if len(m.Entries) > 0 {
			parts := make([]string, len(m.Entries))
			for i, e := range m.Entries {
				parts[i] = fmt.Sprintf("%d/%d", e.Index, e.Term)
				if len(e.Data) > 0 {
					parts[i] += ":" + string(e.Data)
				}
			}
			fmt.Fprintf(&b, " ents=[%s]", strings.Join(parts, " "))
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
	}
	return b.String()
}

// describeNode is a one-line summary of a node's state for golden output.
func describeNode(n *Node) string {
	st := n.Status()
	s := fmt.Sprintf("%d: %s term=%d vote=%d lead=%d commit=%d applied=%d last=%d",
		st.ID, st.Role, st.Term, st.Vote, st.Lead, st.Commit, st.Applied, st.LastIndex)
	if st.Progress != nil {
		ids := make([]NodeID, 0, len(st.Progress))
		for id := range st.Progress {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
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

var _ = slices.Sort[[]int]
