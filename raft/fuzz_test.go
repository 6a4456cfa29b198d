package raft

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// FuzzCluster reads the fuzz input as a schedule for a 3- or 5-node
// in-memory cluster — ticks, proposals, Ready handling, message delivery,
// loss, duplication and reordering, partitions, crashes (including crashes
// in the middle of handling a Ready), transfers, reads and compactions — and
// checks the Raft safety properties (Figure 3) after every step:
//
//   - election safety: at most one leader per term;
//   - log matching: persisted logs that agree on an entry's term agree on
//     every entry before it;
//   - leader completeness: the newest leader holds every committed entry;
//   - state machine safety: no two nodes apply different entries at one
//     index, and a committed entry never changes;
//   - a node's commit index never decreases, a persisted vote never changes
//     within its term, and SendNow only carries what the persistence
//     contract allows.
//
// Once the schedule ends, the network heals and the cluster must elect a
// leader and commit a new proposal everywhere.
func FuzzCluster(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0x01, 11, 0, 15, 15, 15, 2, 0, 15, 15, 15, 1, 1, 1})
	f.Add([]byte{0x07, 11, 1, 15, 15, 2, 1, 2, 2, 15, 7, 1, 2, 0, 2, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 15, 15, 15})
	f.Add([]byte{0x02, 11, 2, 15, 15, 2, 2, 2, 2, 14, 2, 9, 0, 15, 15, 3, 1, 4, 0, 5, 1, 6, 2, 15, 15})
	f.Add([]byte{0xc3, 11, 0, 15, 15, 15, 2, 3, 15, 7, 0, 7, 1, 1, 1, 1, 1, 1, 15, 15, 2, 1, 15, 15, 8, 1, 1, 15, 15})
	f.Add([]byte{0x13, 11, 0, 15, 15, 15, 2, 0, 2, 0, 2, 0, 10, 0, 1, 15, 15, 11, 2, 15, 15, 12, 0, 1, 15, 15, 13, 1, 15, 15})
	f.Add(bytes.Repeat([]byte{1, 2, 0, 15, 3, 1, 4, 0, 6, 1, 7, 2, 15, 8, 9, 1, 14, 0}, 8))
	// Lease reads on a leader that is cut off: one read per tick until long
	// after the majority elected another leader.
	f.Add(append([]byte{0x0c, 11, 0, 15, 15, 15, 15, 1, 15, 7, 0}, bytes.Repeat([]byte{1, 15, 15, 13, 0, 15}, 30)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		runFuzzSchedule(t, data)
	})
}

// fuzzConfig picks the cluster shape and options from the first byte (bit
// 0x40, asymmetric partitions, and 0x80, a learner, are read by the caller).
func fuzzConfig(b byte) (n int, configure func(*Config)) {
	n = 3
	if b&1 != 0 {
		n = 5
	}
	return n, func(c *Config) {
		c.ElectionTicks = 5
		c.PreVote = b&2 != 0
		c.CheckQuorum = b&4 != 0
		if c.CheckQuorum && b&8 != 0 {
			c.ReadOnly = ReadOnlyLeaseBased
		}
		if b&16 != 0 {
			// Small limits exercise batching and flow control.
			c.MaxBytesPerMsg = 64
			c.MaxInflightMsgs = 2
			c.MaxInflightBytes = 128
			c.MaxApplyBytesPerReady = 64
		}
		c.Seed = uint64(b)*7919 + uint64(c.ID)
	}
}

type fuzzChecker struct {
	t *testing.T
	c *cluster
	// leaders is every (term, leader) pair ever observed.
	leaders map[Term]NodeID
	// committed is every entry any node ever considered committed.
	committed map[Index]Entry
	// appliedCursor is how much of each apply stream was checked.
	appliedCursor map[NodeID]int
	lastApplied   map[NodeID]Index
	commit        map[NodeID]Index
	storedCommit  map[NodeID]Index
	votes         map[NodeID]map[Term]NodeID
	props         int
	// readFloor is, per read request, the highest commit index known
	// anywhere when it was made; readCursor how many answers were checked.
	readFloor  map[string]Index
	readCursor map[NodeID]int
}

func runFuzzSchedule(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	n, configure := fuzzConfig(data[0])
	asymmetric := data[0]&0x40 != 0
	var c *cluster
	if data[0]&0x80 != 0 {
		// n voters and a learner.
		var ids, voters []NodeID
		for i := 1; i <= n+1; i++ {
			ids = append(ids, NodeID(i))
		}
		voters = ids[:n]
		c = newClusterWithConf(ids, ConfState{Voters: voters, Learners: []NodeID{NodeID(n + 1)}})
		c.configure = configure
		for _, id := range ids {
			c.start(id)
		}
	} else {
		c = newCluster(n, configure)
	}
	data = data[1:]
	fc := &fuzzChecker{
		t: t, c: c,
		leaders:       map[Term]NodeID{},
		committed:     map[Index]Entry{},
		appliedCursor: map[NodeID]int{},
		lastApplied:   map[NodeID]Index{},
		commit:        map[NodeID]Index{},
		storedCommit:  map[NodeID]Index{},
		votes:         map[NodeID]map[Term]NodeID{},
		readFloor:     map[string]Index{},
		readCursor:    map[NodeID]int{},
	}
	c.onReady = fc.checkReady
	// With RAFT_FUZZ_TRACE set, a failure shows the schedule and what it did
	// (off by default: formatting every message halves the exec rate).
	if os.Getenv("RAFT_FUZZ_TRACE") != "" {
		c.trace = &strings.Builder{}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("trace:\n%s", c.trace.String())
			}
		})
	}
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return int(b)
	}
	node := func() NodeID { return c.ids[next()%len(c.ids)] }
	pick := func() int {
		if len(c.inflight) == 0 {
			return -1
		}
		return next() % len(c.inflight)
	}
	take := func(i int) Message {
		m := c.inflight[i]
		c.inflight = append(c.inflight[:i], c.inflight[i+1:]...)
		return m
	}
	for step := 0; len(data) > 0; step++ {
		op := next() % 16
		c.logf("-- step %d: op %d", step, op)
		switch op {
		case 0:
			c.tickNode(node())
		case 1:
			for _, id := range c.ids {
				c.tickNode(id)
			}
		case 2:
			fc.props++
			_ = c.nodes[node()].Propose([]byte(fmt.Sprintf("p%d", fc.props)))
		case 3:
			c.process(node())
		case 4:
			if i := pick(); i >= 0 {
				c.stepOne(take(i))
			}
		case 5:
			if i := pick(); i >= 0 {
				m := take(i)
				if m.Type == MsgSnap {
					c.nodes[m.From].ReportSnapshot(m.To, false)
				} else if next()&1 == 0 {
					c.nodes[m.From].ReportUnreachable(m.To)
				}
			}
		case 6:
			if i := pick(); i >= 0 {
				c.stepOne(c.inflight[i])
			}
		case 7:
			if id := node(); asymmetric {
				// One direction of one link: id no longer reaches the
				// next node, which still reaches id.
				c.cutLink(id, c.ids[(int(id))%len(c.ids)])
			} else {
				c.isolate(id)
			}
		case 8:
			c.heal()
		case 9:
			fc.restart(node())
		case 10:
			fc.crashDuringReady(node(), next())
		case 11:
			c.nodes[node()].Campaign()
		case 12:
			from, to := node(), node()
			_ = c.nodes[from].TransferLeadership(to)
		case 13:
			// A linearizable read must see every write committed before it
			// was requested: its read index may not be below any commit
			// index known now.
			ctx := fmt.Sprintf("r%d", step)
			var floor Index
			for _, id := range c.ids {
				floor = max(floor, c.nodes[id].r.log.committed)
			}
			fc.readFloor[ctx] = floor
			_ = c.nodes[node()].ReadIndex([]byte(ctx))
		case 14:
			id := node()
			if k := len(c.applied[id]); k > 0 {
				i := c.applied[id][k-1].Index
				if snap, _ := c.storage[id].Snapshot(); i > snap.Meta.Index {
					if err := c.compact(id, i); err != nil {
						t.Fatalf("compact node %d at %d: %v", id, i, err)
					}
				}
			}
		case 15:
			for _, id := range c.ids {
				c.process(id)
			}
			c.deliver()
		}
		fc.check(fmt.Sprintf("step %d (op %d)", step, op))
	}
	fc.checkLiveness()
}

func (fc *fuzzChecker) restart(id NodeID) {
	fc.c.restart(id)
	delete(fc.commit, id)
}

// crashDuringReady takes a Ready, sends SendNow (which doc.go allows before
// anything is durable), persists a prefix of the Ready and crashes.
func (fc *fuzzChecker) crashDuringReady(id NodeID, how int) {
	c := fc.c
	n := c.nodes[id]
	if !n.HasReady() {
		return
	}
	rd := n.Ready()
	fc.checkReady(id, rd)
	c.send(rd.SendNow)
	ms := c.storage[id]
	if how&1 != 0 {
		if rd.Snapshot != nil {
			if err := ms.ApplySnapshot(*rd.Snapshot); err != nil {
				panic(err)
			}
		}
		if err := ms.Append(rd.Entries); err != nil {
			panic(err)
		}
	}
	fc.restart(id)
}

// checkReady checks the persistence contract on a Ready before it is
// handled: SendNow holds only leader messages of a term whose vote is
// already durable, for the leader itself.
func (fc *fuzzChecker) checkReady(id NodeID, rd Ready) {
	hs := fc.c.storage[id].HardState()
	for _, m := range rd.SendNow {
		if !leaderMayPipeline(m.Type) {
			fc.t.Fatalf("node %d: SendNow holds %s", id, describeMessage(m))
		}
		if m.Term != hs.Term || hs.Vote != id {
			fc.t.Fatalf("node %d: SendNow holds %s, but the durable hard state is term %d vote %d", id, describeMessage(m), hs.Term, hs.Vote)
		}
	}
	for _, m := range rd.SendAfterPersist {
		if m.Type == MsgVote && m.Term > max(rd.HardState.Term, hs.Term) {
			fc.t.Fatalf("node %d: vote request %s for a term that is not being persisted", id, describeMessage(m))
		}
	}
}

func (fc *fuzzChecker) check(where string) {
	t, c := fc.t, fc.c
	t.Helper()
	if len(c.stepErrs) > 0 {
		t.Fatalf("%s: Step refused an honest peer's message: %v", where, c.stepErrs)
	}
	var maxLeaderTerm Term
	for _, id := range c.ids {
		r := c.nodes[id].r
		if r.role == RoleLeader {
			if l, ok := fc.leaders[r.term]; ok && l != id {
				t.Fatalf("%s: election safety: term %d has leaders %d and %d", where, r.term, l, id)
			}
			fc.leaders[r.term] = id
		}
	}
	for term := range fc.leaders {
		maxLeaderTerm = max(maxLeaderTerm, term)
	}
	for _, id := range c.ids {
		r := c.nodes[id].r
		// Commit never decreases (while the node is up; across restarts the
		// durable commit never decreases).
		if prev, ok := fc.commit[id]; ok && r.log.committed < prev {
			t.Fatalf("%s: node %d commit index went from %d to %d", where, id, prev, r.log.committed)
		}
		fc.commit[id] = r.log.committed
		hs := c.storage[id].HardState()
		if hs.Commit < fc.storedCommit[id] {
			t.Fatalf("%s: node %d durable commit went from %d to %d", where, id, fc.storedCommit[id], hs.Commit)
		}
		fc.storedCommit[id] = hs.Commit
		if last := c.storage[id].lastIndex(); hs.Commit > last {
			t.Fatalf("%s: node %d durable commit %d is past its durable log (last %d)", where, id, hs.Commit, last)
		}
		if fc.votes[id] == nil {
			fc.votes[id] = map[Term]NodeID{}
		}
		if hs.Vote != None {
			if v, ok := fc.votes[id][hs.Term]; ok && v != hs.Vote {
				t.Fatalf("%s: node %d voted for %d and then %d in term %d", where, id, v, hs.Vote, hs.Term)
			}
			fc.votes[id][hs.Term] = hs.Vote
		}
		// Committed entries never change.
		lo := r.log.firstIndex()
		if r.log.committed >= lo {
			ents, err := r.log.slice(lo, r.log.committed+1, 0)
			if err != nil {
				t.Fatalf("%s: node %d reading its committed log: %v", where, id, err)
			}
			for _, e := range ents {
				if prev, ok := fc.committed[e.Index]; ok {
					if !sameEntry(prev, e) {
						t.Fatalf("%s: node %d has committed entry %s, but %s was committed at that index", where, id, describeEntries([]Entry{e}), describeEntries([]Entry{prev}))
					}
				} else {
					fc.committed[e.Index] = e
				}
			}
		}
		// State machine safety.
		stream := c.applied[id]
		for k := fc.appliedCursor[id]; k < len(stream); k++ {
			e := stream[k]
			if string(e.Data) == "<snapshot>" {
				if e.Index < fc.lastApplied[id] {
					t.Fatalf("%s: node %d applied snapshot %d after applying %d", where, id, e.Index, fc.lastApplied[id])
				}
			} else {
				if e.Index != fc.lastApplied[id]+1 {
					t.Fatalf("%s: node %d applied entry %d after %d: got a gap or a repeat, want %d", where, id, e.Index, fc.lastApplied[id], fc.lastApplied[id]+1)
				}
				prev, ok := fc.committed[e.Index]
				if !ok {
					fc.committed[e.Index] = e
				} else if !sameEntry(prev, e) {
					t.Fatalf("%s: node %d applied %s at an index where %s was committed", where, id, describeEntries([]Entry{e}), describeEntries([]Entry{prev}))
				}
			}
			fc.lastApplied[id] = e.Index
		}
		fc.appliedCursor[id] = len(stream)
		for k := fc.readCursor[id]; k < len(c.reads[id]); k++ {
			rs := c.reads[id][k]
			if floor := fc.readFloor[string(rs.RequestCtx)]; rs.Index < floor {
				t.Fatalf("%s: node %d answered read %s at index %d, but %d was committed before it was requested: got a stale read, want index >= %d", where, id, rs.RequestCtx, rs.Index, floor, floor)
			}
		}
		fc.readCursor[id] = len(c.reads[id])
	}
	// Leader completeness: the leader of the newest term holds every
	// committed entry it has not compacted.
	if l, ok := fc.leaders[maxLeaderTerm]; ok && c.nodes[l].r.role == RoleLeader && c.nodes[l].r.term == maxLeaderTerm {
		r := c.nodes[l].r
		for i, e := range fc.committed {
			if i < r.log.firstIndex() {
				continue
			}
			if i > r.log.lastIndex() {
				t.Fatalf("%s: leader completeness: leader %d of term %d lacks committed entry %d (last %d)", where, l, maxLeaderTerm, i, r.log.lastIndex())
			}
			got, err := r.log.slice(i, i+1, 0)
			if err != nil || !sameEntry(got[0], e) {
				t.Fatalf("%s: leader completeness: leader %d of term %d has %v at %d, want %s", where, l, maxLeaderTerm, got, i, describeEntries([]Entry{e}))
			}
		}
	}
	// Log matching on the persisted logs.
	for a := 0; a < len(c.ids); a++ {
		for b := a + 1; b < len(c.ids); b++ {
			if err := checkLogMatching(c.storedLog(c.ids[a]), c.storedLog(c.ids[b])); err != nil {
				t.Fatalf("%s: log matching between %d and %d: %v", where, c.ids[a], c.ids[b], err)
			}
		}
	}
}

func sameEntry(a, b Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// checkLogMatching checks the Log Matching Property (§5.3) on two logs: if
// they hold an entry with the same index and term, they are identical in
// every entry up to that index (that both still hold).
func checkLogMatching(x, y []Entry) error {
	if len(x) == 0 || len(y) == 0 {
		return nil
	}
	lo := max(x[0].Index, y[0].Index)
	hi := min(x[len(x)-1].Index, y[len(y)-1].Index)
	at := func(l []Entry, i Index) Entry { return l[i-l[0].Index] }
	agreed := false
	for i := hi; i >= lo && i > 0; i-- {
		ex, ey := at(x, i), at(y, i)
		if !agreed && ex.Term == ey.Term {
			agreed = true
		}
		if agreed && !sameEntry(ex, ey) {
			return fmt.Errorf("they agree on a later entry but differ at %d: %s vs %s", i, describeEntries([]Entry{ex}), describeEntries([]Entry{ey}))
		}
	}
	return nil
}

// checkLiveness heals everything and requires the cluster to elect a
// leader and then apply a new proposal on every node. A proposal may be lost
// when leadership changes before it commits, so it is retried.
func (fc *fuzzChecker) checkLiveness() {
	t, c := fc.t, fc.c
	c.heal()
	c.dropTypes = map[MessageType]bool{}
	c.stabilize()
	fc.check("liveness: after healing")
	const rounds = 300
	everywhere := func() bool {
		for _, id := range c.ids {
			if last(c.appliedData(id)) != "final" {
				return false
			}
		}
		return true
	}
	for round := 0; round < rounds; round++ {
		if everywhere() {
			return
		}
		if lead := c.leader(); lead != None && round%20 == 0 {
			if err := c.nodes[lead].Propose([]byte("final")); err != nil && !errors.Is(err, ErrProposalDropped) {
				t.Fatalf("liveness: proposing on leader %d: %v", lead, err)
			}
		}
		for _, id := range c.ids {
			c.tickNode(id)
		}
		c.stabilize()
		fc.check(fmt.Sprintf("liveness: round %d", round))
	}
	for _, id := range c.ids {
		t.Log(describeNode(c.nodes[id]))
		t.Logf("   applied %q", c.appliedData(id))
	}
	t.Fatalf("liveness: the cluster did not apply a new proposal on every node within %d rounds after healing", rounds)
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
