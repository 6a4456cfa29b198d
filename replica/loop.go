package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/lockstep/lockstep/raft"
)

// loopState is the raft loop's own bookkeeping; only the loop goroutine
// touches it.
type loopState struct {
	ticks uint64
	// inflight is the ReadIndex round under way. One round at a time:
	// every read that arrives while a round runs joins the next batch
	// (Replica.nextRead), so reads cost one heartbeat round per batch.
	inflight  *readRound
	readID    uint64
	proposals [][]byte
	seqs      []uint64
}

type readRound struct {
	id    uint64
	batch *readBatch
}

// maxDrain bounds the inputs gathered before one Ready, so that a flood of
// messages cannot starve persistence and sending.
const maxDrain = 512

// runRaft is the raft loop: the only goroutine that touches r.node. It
// gathers inputs (ticks, proposals, peer messages, reads, control calls),
// then handles the Ready they produced: send what may go at once, persist,
// send the rest, hand committed entries to the apply loop, Advance.
func (r *Replica[R]) runRaft() {
	defer r.loops.Done()
	ticker := time.NewTicker(r.cfg.TickInterval)
	defer ticker.Stop()
	ls := &loopState{}
	for {
		select {
		case <-r.stopc:
			return
		case <-ticker.C:
			r.tick(ls)
		case p := <-r.propc:
			r.propose(ls, p)
		case msgs := <-r.recvc:
			r.step(msgs)
		case <-r.readKick:
		case f := <-r.ctlc:
			f()
		}
		r.drain(ls)
		r.maybeStartRead(ls)
		// A Ready's handling can start a read round or commit more (the
		// leader's own entries count once persisted): keep going until raft
		// has nothing left, rather than until the next input.
		for r.node.HasReady() {
			if err := r.handleReady(ls); err != nil {
				if !errors.Is(err, ErrStopped) {
					r.fail(err)
				}
				return
			}
		}
	}
}

// drain takes whatever other inputs are already waiting, without blocking.
func (r *Replica[R]) drain(ls *loopState) {
	for i := 0; i < maxDrain; i++ {
		select {
		case p := <-r.propc:
			r.propose(ls, p)
		case msgs := <-r.recvc:
			r.step(msgs)
		case <-r.readKick:
		case f := <-r.ctlc:
			f()
		default:
			return
		}
	}
}

func (r *Replica[R]) tick(ls *loopState) {
	r.node.Tick()
	ls.ticks++
	if ls.inflight != nil && ls.ticks-ls.inflight.batch.since > uint64(2*r.cfg.ElectionTicks) {
		// The round was lost with a leadership change; its readers retry.
		ls.inflight.batch.fail(fmt.Errorf("%w: read index round timed out", ErrNoLeader))
		ls.inflight = nil
	}
	r.expireApplyWait(ls.ticks, r.readTimeoutTicks())
}

func (r *Replica[R]) step(msgs []raft.Message) {
	for _, m := range msgs {
		if err := r.node.Step(m); err != nil && !errors.Is(err, raft.ErrProposalDropped) {
			r.cfg.Logger.Warn("dropping a message raft refused", "id", r.cfg.ID, "from", m.From, "type", m.Type.String(), "err", err)
		}
	}
}

// propose hands a batch of proposals to raft in one call: one append, one
// fsync and one round of messages for all of them.
func (r *Replica[R]) propose(ls *loopState, first proposal) {
	ls.proposals = append(ls.proposals[:0], first.data)
	ls.seqs = append(ls.seqs[:0], first.seq)
	for len(ls.proposals) < r.cfg.MaxProposalBatch {
		select {
		case p := <-r.propc:
			ls.proposals = append(ls.proposals, p.data)
			ls.seqs = append(ls.seqs, p.seq)
			continue
		default:
		}
		break
	}
	err := r.node.Propose(ls.proposals...)
	if err != nil {
		if errors.Is(err, raft.ErrProposalDropped) && r.node.Leader() == raft.None {
			err = ErrNoLeader
		} else {
			err = fmt.Errorf("%w: %w", ErrProposalDropped, err)
		}
		for _, seq := range ls.seqs {
			r.resolve(seq, outcome[R]{err: err})
		}
		return
	}
	if r.node.Role() != raft.RoleLeader {
		r.mu.Lock()
		for _, seq := range ls.seqs {
			if f := r.waiters[seq]; f != nil {
				f.forwarded = true
			}
		}
		r.mu.Unlock()
	} else {
		last := r.node.LastIndex()
		first := last - raft.Index(len(ls.seqs)) + 1
		r.mu.Lock()
		for i, seq := range ls.seqs {
			r.assigned = append(r.assigned, assignedIndex{index: first + raft.Index(i), seq: seq})
		}
		r.mu.Unlock()
	}
	clear(ls.proposals)
}

// maybeStartRead starts a ReadIndex round for the batch of reads waiting,
// if no round runs.
func (r *Replica[R]) maybeStartRead(ls *loopState) {
	if ls.inflight != nil || r.applyWaitFull() {
		return
	}
	b := r.takeRead()
	if b == nil {
		return
	}
	ls.readID++
	ctx := binary.LittleEndian.AppendUint64(nil, ls.readID)
	if err := r.node.ReadIndex(ctx); err != nil {
		b.fail(ErrNoLeader)
		return
	}
	b.since = ls.ticks
	ls.inflight = &readRound{id: ls.readID, batch: b}
}

func (r *Replica[R]) readDone(ls *loopState, rs raft.ReadState) {
	if ls.inflight == nil || len(rs.RequestCtx) != 8 || binary.LittleEndian.Uint64(rs.RequestCtx) != ls.inflight.id {
		return
	}
	r.readConfirmed(ls.inflight.batch, rs.Index)
	ls.inflight = nil
}

// readTimeoutTicks is Config.ReadTimeout in ticks, at least one.
func (r *Replica[R]) readTimeoutTicks() uint64 {
	return uint64(max(1, r.cfg.ReadTimeout/r.cfg.TickInterval))
}

// handleReady carries out one Ready in the order raft/doc.go prescribes.
func (r *Replica[R]) handleReady(ls *loopState) error {
	rd := r.node.Ready()
	if rd.SoftState != nil {
		r.setLeader(rd.SoftState.Lead)
	}
	if term := uint64(r.node.Term()); r.term.Swap(term) != term {
		r.failForwarded()
	}
	// The leader's appends go out while it writes its own disk.
	r.tr.Send(rd.SendNow)
	// Committed entries that are already durable here (always the case on
	// the leader, whose own entries count only once persisted) are applied
	// while this Ready's new entries are written, rather than after: the
	// commit does not wait for an unrelated fsync. Entries this Ready
	// persists must be durable first (raft/doc.go).
	applied := false
	if early := rd.Snapshot == nil && len(rd.CommittedEntries) > 0 &&
		(len(rd.Entries) == 0 || rd.CommittedEntries[len(rd.CommittedEntries)-1].Index < rd.Entries[0].Index); early {
		if err := r.handOff(applyTask{entries: rd.CommittedEntries}); err != nil {
			return err
		}
		applied = true
	}
	if rd.Snapshot != nil {
		if err := r.store.ApplySnapshot(*rd.Snapshot); err != nil {
			return fmt.Errorf("replica: persisting the snapshot at %d: %w", rd.Snapshot.Meta.Index, err)
		}
	}
	if len(rd.Entries) > 0 || !rd.HardState.IsEmpty() {
		if err := r.store.Save(rd.HardState, rd.Entries, rd.MustSync); err != nil {
			return fmt.Errorf("replica: persisting %d entries: %w", len(rd.Entries), err)
		}
		if rd.HardState.Commit > 0 {
			r.committed.Store(uint64(rd.HardState.Commit))
		}
	}
	r.tr.Send(rd.SendAfterPersist)
	for _, rs := range rd.ReadStates {
		r.readDone(ls, rs)
	}
	if !applied && (rd.Snapshot != nil || len(rd.CommittedEntries) > 0) {
		if err := r.handOff(applyTask{snap: rd.Snapshot, entries: rd.CommittedEntries}); err != nil {
			return err
		}
	}
	r.node.Advance(rd)
	r.maybeStartRead(ls)
	return nil
}

// failForwarded resolves proposals forwarded to the leader of an earlier
// term with ErrOutcomeUnknown: that leader may have dropped them (no
// message says so) or appended them for the new one to commit. Without
// this, a proposal whose context has no deadline would wait forever. One
// that still applies finds no waiter and only updates the state machine.
func (r *Replica[R]) failForwarded() {
	r.mu.Lock()
	var lost []*Future[R]
	for seq, f := range r.waiters {
		if f.forwarded {
			delete(r.waiters, seq)
			lost = append(lost, f)
		}
	}
	r.mu.Unlock()
	for _, f := range lost {
		f.complete(outcome[R]{err: fmt.Errorf("%w: forwarded to a leader that lost its term", ErrOutcomeUnknown)})
	}
}

// handOff gives the apply loop a batch, waiting while it is busy: applyc's
// bound is the back-pressure that keeps applying from falling far behind.
func (r *Replica[R]) handOff(t applyTask) error {
	select {
	case r.applyc <- t:
		return nil
	case <-r.stopc:
		return ErrStopped
	}
}

func (r *Replica[R]) setLeader(id raft.NodeID) {
	if raft.NodeID(r.leader.Swap(uint64(id))) == id {
		return
	}
	r.leaderChanges.Add(1)
	r.cfg.Logger.Info("leader changed", "id", r.cfg.ID, "leader", id, "term", r.node.Term())
	r.leaderMu.Lock()
	close(r.leaderCh)
	r.leaderCh = make(chan struct{})
	r.leaderMu.Unlock()
}
