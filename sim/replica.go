package sim

import (
	"encoding/binary"
	"errors"

	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/raft"
)

// replica is the simulated runtime of one node: it drives the real
// raft.Node, persists to its Disk, sends through the world's network and
// applies to its machine, following raft/doc.go's persistence contract.
type replica struct {
	w    *World
	id   raft.NodeID
	up   bool
	inc  int // incremented by every crash; stale events carry an older one
	rn   *raft.Node
	disk Disk
	sm   *machine
	// pausedUntil: the node is paused until then (World.Pause).
	pausedUntil Time

	// applied is the index the state machine has applied.
	// Invariant: applied <= the node's commit index.
	applied raft.Index
	// persisting: a Ready is handed out and its disk write not finished;
	// rd is that Ready.
	persisting bool
	rd         raft.Ready
	// hs is the newest hard state raft has given since the start. As the
	// runtime's disk store does, a Ready that only moves the commit index
	// writes nothing, and hs goes to disk with the next Ready that must
	// sync: the commit index on disk lags, and a crash shows that raft
	// does not need it.
	hs raft.HardState
	// restored is the index of the snapshot the node restarted from:
	// entries up to it that raft hands out again (the commit index on
	// disk may be older than the snapshot) are already in the state
	// machine, and are skipped, as the runtime's apply loop skips them.
	restored raft.Index

	role raft.Role
	lead raft.NodeID
	term raft.Term

	// writes and reads are client requests waiting here for an answer;
	// each client has at most one of them per replica.
	writes []writeWait
	reads  []readWait
	// sinceSnap counts entries applied since the last snapshot.
	sinceSnap int
	// compactProposed is the revision up to which this node last proposed
	// a compaction, so it proposes one per CompactEvery revisions, not one
	// per apply while the first is in flight.
	compactProposed int64
	// checkedTerm is the last term in which this node, as leader, had its
	// log checked for leader completeness.
	checkedTerm raft.Term
}

type writeWait struct {
	client int
	req    uint64
	att    int
	cmd    Command
}

type readWait struct {
	ticket uint64
	client int
	req    uint64
	att    int
	key    string
	index  raft.Index
	ready  bool // a ReadState arrived for ticket
}

// start (re)starts the node from its disk: the state machine is restored
// from the latest snapshot, and raft re-applies the log after it.
func (r *replica) start() {
	w := r.w
	r.sm = newMachine(w.opt.Hooks.LossyPutEvery)
	r.applied, r.restored, r.hs = 0, 0, raft.HardState{}
	snap, err := r.disk.Snapshot()
	if err != nil {
		w.fail("n%d: reading snapshot: %v", r.id, err)
		return
	}
	if !snap.IsEmpty() {
		if err := r.sm.Restore(snap.Data); err != nil {
			w.fail("n%d: %v", r.id, err)
			return
		}
		r.applied, r.restored = snap.Meta.Index, snap.Meta.Index
		w.chk.onRestore(r, snap.Meta.Index)
	}
	hs, _, err := r.disk.InitialState()
	if err != nil {
		w.fail("n%d: reading the hard state: %v", r.id, err)
		return
	}
	cfg := raft.Config{
		ID:             r.id,
		Storage:        r.disk,
		ElectionTicks:  w.opt.ElectionTicks,
		HeartbeatTicks: w.opt.HeartbeatTicks,
		MaxBytesPerMsg: w.opt.MaxBytesPerMsg,
		PreVote:        true,
		CheckQuorum:    true,
		Seed:           w.rng.Uint64(),
		// The log may keep a few entries before the snapshot index; the
		// restored state machine already reflects them. Applied may not
		// pass the commit index on disk, which may be older (see hs).
		Applied: min(r.applied, hs.Commit),
	}
	if w.opt.LeaseReads {
		// Virtual time is every node's clock: it runs on while a node is
		// paused. The lease is shorter than the election timeout by two
		// ticks, as the runtime's is.
		cfg.ReadOnly = raft.ReadOnlyLeaseBased
		cfg.Now = func() int64 { return int64(w.now) }
		cfg.LeaseDuration = int64(Time(w.opt.ElectionTicks-2) * UnitsPerTick)
	}
	rn, err := raft.NewNode(cfg)
	if err != nil {
		w.fail("n%d cannot restart from its disk: %v", r.id, err)
		return
	}
	r.rn = rn
	r.up = true
	r.role, r.lead = raft.RoleFollower, raft.None
	r.pausedUntil = 0
	r.term = hs.Term
	r.sinceSnap = 0
	r.compactProposed = 0
}

func (r *replica) crash() {
	r.up = false
	r.inc++
	r.rn = nil
	r.persisting = false
	r.rd = raft.Ready{}
	r.writes, r.reads = nil, nil
	d, err := r.disk.Crash(r.w.rng)
	if err != nil {
		r.w.fail("n%d: crash: %v", r.id, err)
		return
	}
	r.disk = d
	// An unreadable hard state fails the restart (start), not this count.
	if hs, _, err := d.InitialState(); err == nil && hs.Commit < r.hs.Commit {
		r.w.stats.StaleCommits++
	}
	if sd, ok := d.(*storeDisk); ok && sd.tornNow {
		r.w.stats.TornTails++
		r.w.trace.line(r.w, "n%d recovered from a torn tail", r.id)
	}
}

// drive hands out the next Ready, if there is one and none is in progress.
// Steps 1 and 2 of the contract start here; the disk write finishes after a
// simulated delay (finishReady), so a crash can land in between.
func (r *replica) drive() {
	if !r.up || r.persisting || r.w.done || !r.rn.HasReady() {
		return
	}
	w := r.w
	rd := r.rn.Ready()
	if rd.SoftState != nil {
		r.role, r.lead = rd.SoftState.Role, rd.SoftState.Lead
		r.term = r.rn.Status().Term
		w.trace.line(w, "n%d is %s (term %d, lead n%d)", r.id, r.role, r.term, r.lead)
		w.trace.mark(0xa0, uint64(r.id), uint64(r.role), uint64(r.term), uint64(r.lead))
		if r.role == raft.RoleLeader {
			w.stats.Leaders++
			w.chk.onLeader(r.id, r.term)
		}
	}
	if !rd.HardState.IsEmpty() {
		r.term = rd.HardState.Term
	}
	w.chk.onReady(r, &rd)
	for _, m := range rd.SendNow {
		w.send(m)
	}
	if rd.Snapshot != nil {
		must(w, r.disk.WriteSnapshot(*rd.Snapshot))
	}
	must(w, r.disk.WriteEntries(rd.Entries))
	if !rd.HardState.IsEmpty() {
		r.hs = rd.HardState
	}
	if rd.MustSync && !r.hs.IsEmpty() {
		must(w, r.disk.WriteHardState(r.hs))
	}
	r.rd, r.persisting = rd, true
	var d Time
	if w.opt.PersistMax > 0 {
		d = Time(w.rng.IntN(int(w.opt.PersistMax) + 1))
	}
	w.schedule(&event{kind: evPersist, node: r.id, inc: r.inc}, d)
}

func must(w *World, err error) {
	if err != nil {
		w.fail("%v", err)
	}
}

// finishReady completes a Ready: sync, then steps 3 to 5 of the contract.
func (r *replica) finishReady() {
	w := r.w
	rd := r.rd
	if err := r.disk.Sync(); err != nil {
		w.fail("n%d: %v", r.id, err)
		return
	}
	w.trace.line(w, "n%d persisted hs=%+v ents=%d snap=%v", r.id, rd.HardState, len(rd.Entries), rd.Snapshot != nil)
	w.trace.mark(uint64(evPersist), uint64(r.id), uint64(len(rd.Entries)), uint64(rd.HardState.Commit))
	if h := w.opt.Hooks.AfterPersist; h != nil {
		h(w, r.id, &rd)
		if !r.up || w.done {
			return
		}
	}
	w.chk.onPersisted(r, &rd)
	for _, m := range rd.SendAfterPersist {
		w.send(m)
	}
	if rd.Snapshot != nil {
		if err := r.sm.Restore(rd.Snapshot.Data); err != nil {
			w.fail("n%d: %v", r.id, err)
			return
		}
		r.applied = rd.Snapshot.Meta.Index
		r.sinceSnap = 0
		w.chk.onRestore(r, r.applied)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index <= r.restored {
			continue
		}
		if e.Index != r.applied+1 {
			w.fail("n%d: committed entry %d handed out after applied %d", r.id, e.Index, r.applied)
			return
		}
		client, req, res, answered, err := r.sm.Apply(uint64(e.Index), e.Data)
		if err != nil {
			w.fail("n%d: %v", r.id, err)
			return
		}
		r.applied = e.Index
		r.sinceSnap++
		w.chk.onApply(r, e)
		if answered {
			r.answerWrite(client, req, res, e.Index)
		}
	}
	for _, rs := range rd.ReadStates {
		t := binary.LittleEndian.Uint64(rs.RequestCtx)
		for i := range r.reads {
			if r.reads[i].ticket == t {
				r.reads[i].index, r.reads[i].ready = rs.Index, true
			}
		}
	}
	r.serveReads()
	r.rn.Advance(rd)
	r.persisting, r.rd = false, raft.Ready{}
	r.maybeSnapshot()
	r.maybeCompact()
	r.drive()
}

func (r *replica) answerWrite(client, req uint64, res Answer, idx raft.Index) {
	for i, wt := range r.writes {
		if uint64(wt.client+1) == client && wt.req == req {
			r.writes = append(r.writes[:i], r.writes[i+1:]...)
			r.w.chk.onAck(wt.cmd)
			r.reply(wt.client, wt.req, wt.att, reply{kind: replyOK, res: res})
			return
		}
	}
}

// serveReads answers the reads whose read index the state machine has
// reached (raft/doc.go, step 4).
func (r *replica) serveReads() {
	kept := r.reads[:0]
	for _, rw := range r.reads {
		if rw.ready && rw.index <= r.applied {
			v, ok := r.sm.Get(rw.key)
			r.reply(rw.client, rw.req, rw.att, reply{kind: replyOK, res: Answer{OK: true, Value: v, Found: ok}})
			continue
		}
		kept = append(kept, rw)
	}
	r.reads = kept
}

// maybeSnapshot takes a state machine snapshot every SnapshotEvery applied
// entries and compacts the log behind it, keeping a few entries so that
// slightly lagging followers still catch up from the log.
func (r *replica) maybeSnapshot() {
	w := r.w
	if w.opt.SnapshotEvery == 0 || r.sinceSnap < w.opt.SnapshotEvery {
		return
	}
	snap, _ := r.disk.Snapshot()
	if r.applied <= snap.Meta.Index {
		return
	}
	keep := raft.Index(w.rng.IntN(4))
	compact := r.applied - min(keep, r.applied-1)
	if err := r.disk.SaveSnapshot(r.applied, w.conf, r.sm.Snapshot(), compact); err != nil {
		w.fail("n%d: snapshot at %d: %v", r.id, r.applied, err)
		return
	}
	w.stats.SnapshotsTaken++
	r.sinceSnap = 0
	w.trace.line(w, "n%d snapshot at %d, compacted to %d", r.id, r.applied, compact)
	w.trace.mark(0xa1, uint64(r.id), uint64(r.applied))
}

// maybeCompact has the leader propose a kv compaction once the revision
// has moved CompactEvery past the last one it proposed, keeping the last
// few revisions. The compaction goes through the log like any write, since
// it changes the state every replica must agree on; a duplicate (proposed
// twice, or by two leaders) is rejected by kv alike on every replica.
func (r *replica) maybeCompact() {
	w := r.w
	if w.opt.CompactEvery == 0 || r.role != raft.RoleLeader {
		return
	}
	rev := r.sm.store.Revision()
	if rev-max(r.compactProposed, r.sm.store.CompactRevision()) < int64(w.opt.CompactEvery) {
		return
	}
	at := rev - int64(w.rng.IntN(4))
	if err := r.rn.Propose(encodeEnvelope(0, 0, kv.Command{Compact: &kv.CompactRequest{Revision: at}})); err != nil {
		return
	}
	r.compactProposed = rev
	w.trace.line(w, "n%d proposes compaction at revision %d", r.id, at)
	w.trace.mark(0xa2, uint64(r.id), uint64(at))
	w.stats.Compactions++
}

// onRequest handles a client request arriving at this replica.
func (r *replica) onRequest(e *event) {
	w := r.w
	if !r.up {
		return
	}
	c := e.cmd
	leader := r.role == raft.RoleLeader
	if !leader && (!w.opt.Forward || r.lead == raft.None) {
		r.reply(e.client, e.req, e.attempt, reply{kind: replyNotLeader, hint: r.lead})
		return
	}
	r.forget(e.client)
	if c.Kind == OpGet {
		w.nextTicket++
		t := w.nextTicket
		ctx := binary.LittleEndian.AppendUint64(nil, t)
		if err := r.rn.ReadIndex(ctx); err != nil {
			r.reply(e.client, e.req, e.attempt, reply{kind: replyNotLeader, hint: r.lead})
			return
		}
		r.reads = append(r.reads, readWait{ticket: t, client: e.client, req: e.req, att: e.attempt, key: c.Key})
	} else {
		if err := r.rn.Propose(encodeCommand(c)); err != nil {
			r.reply(e.client, e.req, e.attempt, reply{kind: replyNotLeader, hint: r.lead})
			return
		}
		r.writes = append(r.writes, writeWait{client: e.client, req: e.req, att: e.attempt, cmd: c})
	}
	r.drive()
}

// forget drops what an earlier request of the client still waits for: a
// client has one request outstanding, so the earlier one was abandoned.
func (r *replica) forget(client int) {
	ws := r.writes[:0]
	for _, x := range r.writes {
		if x.client != client {
			ws = append(ws, x)
		}
	}
	r.writes = ws
	rs := r.reads[:0]
	for _, x := range r.reads {
		if x.client != client {
			rs = append(rs, x)
		}
	}
	r.reads = rs
}

func (r *replica) reply(client int, req uint64, att int, rep reply) {
	w := r.w
	if w.rng.Float64() < w.loss {
		return
	}
	w.schedule(&event{kind: evToClient, client: client, req: req, attempt: att, rep: rep, node: r.id}, w.delay())
}

func isDropped(err error) bool { return errors.Is(err, raft.ErrProposalDropped) }
