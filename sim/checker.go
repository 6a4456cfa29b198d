package sim

import (
	"bytes"
	"errors"
	"hash/fnv"

	"github.com/lockstep/lockstep/raft"
)

// checker verifies Raft's safety properties (Figure 3 of the paper) while
// the world runs, from what the replicas do and what their disks hold.
type checker struct {
	w *World
	// leaders records who led each term (election safety).
	leaders map[raft.Term]raft.NodeID
	// recs[i] is the first application of index i anywhere; every other
	// application must agree (state machine safety).
	recs []applyRec
	// commitTerm[i] is the lowest term whose leader was seen with a commit
	// index >= i: entry i was committed in that term or earlier.
	commitTerm []raft.Term
	// acked are the writes acknowledged to clients.
	acked []Command
	// lastExec is, per client, the last request the log executed (a model
	// of the state machine's deduplication, kept from the first
	// application of each index); executed holds every executed request.
	lastExec map[uint64]uint64
	executed map[reqKey]bool
}

type reqKey struct{ client, req uint64 }

type applyRec struct {
	set   bool
	term  raft.Term
	data  uint64 // hash of the entry data
	chain uint64 // the state machine digest after applying it
	by    raft.NodeID
}

func (c *checker) init(w *World) {
	c.w = w
	c.leaders = map[raft.Term]raft.NodeID{}
	c.recs = make([]applyRec, 1, 1024)
	c.commitTerm = make([]raft.Term, 1, 1024)
	c.lastExec = map[uint64]uint64{}
	c.executed = map[reqKey]bool{}
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// onLeader: at most one leader per term (§5.2, election safety).
func (c *checker) onLeader(id raft.NodeID, term raft.Term) {
	if other, ok := c.leaders[term]; ok && other != id {
		c.w.fail("election safety: n%d and n%d both lead term %d", other, id, term)
		return
	}
	c.leaders[term] = id
}

// onReady notes how far a leader says the log is committed.
func (c *checker) onReady(r *replica, rd *raft.Ready) {
	if r.role != raft.RoleLeader || rd.HardState.IsEmpty() {
		return
	}
	t := rd.HardState.Term
	for i := int(rd.HardState.Commit); i > 0; i-- {
		for len(c.commitTerm) <= i {
			c.commitTerm = append(c.commitTerm, 0)
		}
		if ct := c.commitTerm[i]; ct != 0 && ct <= t {
			break
		}
		c.commitTerm[i] = t
	}
}

// onApply: no two replicas apply different commands at one index (§5.4.3,
// state machine safety); the chained digest also catches a replica that
// applied a different history before the index.
func (c *checker) onApply(r *replica, e raft.Entry) {
	i := int(e.Index)
	for len(c.recs) <= i {
		c.recs = append(c.recs, applyRec{})
	}
	rec := applyRec{set: true, term: e.Term, data: hashBytes(e.Data), chain: r.sm.Digest(), by: r.id}
	old := c.recs[i]
	if !old.set {
		c.recs[i] = rec
		if client, req, _, err := decodeEnvelope(e.Data); err == nil && client != 0 && req > c.lastExec[client] {
			c.lastExec[client] = req
			c.executed[reqKey{client, req}] = true
		}
		return
	}
	if old.term != rec.term || old.data != rec.data || old.chain != rec.chain {
		c.w.fail("state machine safety: at index %d n%d applied term %d data %x (digest %x), n%d applied term %d data %x (digest %x)",
			i, old.by, old.term, old.data, old.chain, r.id, rec.term, rec.data, rec.chain)
	}
}

// onRestore: a state machine restored from a snapshot at index i must be
// the state every replica that applied up to i reached.
func (c *checker) onRestore(r *replica, i raft.Index) {
	if int(i) < len(c.recs) && c.recs[i].set && c.recs[i].chain != r.sm.Digest() {
		c.w.fail("state machine safety: n%d restored a snapshot at %d with digest %x, but the state after applying %d is %x",
			r.id, i, r.sm.Digest(), i, c.recs[i].chain)
	}
}

func (c *checker) onAck(cmd Command) { c.acked = append(c.acked, cmd) }

// onPersisted checks leader completeness (§5.4, Figure 3): once a leader's
// first entry of its term is durable, its log holds every entry committed
// in an earlier term, all of them before that first entry.
func (c *checker) onPersisted(r *replica, rd *raft.Ready) {
	if r.role != raft.RoleLeader || r.term <= r.checkedTerm {
		return
	}
	var first raft.Index
	for _, e := range rd.Entries {
		if e.Term == r.term {
			first = e.Index
			break
		}
	}
	if first == 0 {
		return
	}
	r.checkedTerm = r.term
	n := min(len(c.recs), len(c.commitTerm))
	for i := 1; i < n; i++ {
		ct, rec := c.commitTerm[i], c.recs[i]
		if ct == 0 || ct >= r.term || !rec.set {
			continue
		}
		if raft.Index(i) >= first {
			c.w.fail("leader completeness: n%d leads term %d with its first entry at %d, but entry %d (term %d) was committed in term %d",
				r.id, r.term, first, i, rec.term, ct)
			return
		}
		t, err := r.disk.Term(raft.Index(i))
		if errors.Is(err, raft.ErrCompacted) {
			continue
		}
		if err != nil || t != rec.term {
			c.w.fail("leader completeness: n%d leads term %d but holds term %d (%v) at %d, where term %d was committed in term %d",
				r.id, r.term, t, err, i, rec.term, ct)
			return
		}
	}
}

// checkLogs checks the durable logs: log matching (§5.3: two logs with an
// entry of the same index and term are identical up to it), and that no
// disk holds, at or below its commit index, anything but what was applied.
func (c *checker) checkLogs() {
	w := c.w
	logs := make([][]raft.Entry, len(w.nodes))
	for k, r := range w.nodes {
		logs[k] = r.disk.Log()
		hs, _, _ := r.disk.InitialState()
		for _, e := range logs[k] {
			if e.Index > hs.Commit {
				break
			}
			if int(e.Index) < len(c.recs) && c.recs[e.Index].set && c.recs[e.Index].term != e.Term {
				w.fail("committed entry changed: n%d holds term %d at %d (commit %d), but term %d was applied there",
					r.id, e.Term, e.Index, hs.Commit, c.recs[e.Index].term)
				return
			}
		}
	}
	for a := 0; a < len(logs); a++ {
		for b := a + 1; b < len(logs); b++ {
			if !logsMatch(logs[a], logs[b]) {
				w.fail("log matching: n%d and n%d share an entry but differ before it", a+1, b+1)
				return
			}
		}
	}
}

func logsMatch(x, y []raft.Entry) bool {
	if len(x) == 0 || len(y) == 0 {
		return true
	}
	lo := max(x[0].Index, y[0].Index)
	hi := min(x[len(x)-1].Index, y[len(y)-1].Index)
	matched := false
	for i := hi; i >= lo && i > 0; i-- {
		ex, ey := x[i-x[0].Index], y[i-y[0].Index]
		if !matched {
			matched = ex.Term == ey.Term
		}
		if matched && (ex.Term != ey.Term || !bytes.Equal(ex.Data, ey.Data)) {
			return false
		}
	}
	return true
}
