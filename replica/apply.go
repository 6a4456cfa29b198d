package replica

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/lockstep/lockstep/raft"
)

// snapshotter is the apply loop's record of the last snapshot taken.
type snapshotter struct {
	lastIndex raft.Index
	conf      raft.ConfState
}

// runApply is the apply loop: it applies committed entries to the state
// machine in log order, routes results to proposers and takes snapshots.
func (r *Replica[R]) runApply(st *snapshotter) {
	defer r.loops.Done()
	var cmds []Command
	var owners []owner
	var results []R
	for {
		select {
		case <-r.stopc:
			return
		case t := <-r.applyc:
			var err error
			cmds, owners, results, err = r.apply(st, t, cmds, owners, results)
			if err != nil {
				r.fail(err)
				return
			}
		}
	}
}

type owner struct {
	id  raft.NodeID
	seq uint64
}

func (r *Replica[R]) apply(st *snapshotter, t applyTask, cmds []Command, owners []owner, results []R) ([]Command, []owner, []R, error) {
	if t.snap != nil {
		if err := r.sm.Restore(bytes.NewReader(t.snap.Data)); err != nil {
			return cmds, owners, results, fmt.Errorf("replica: restoring the snapshot at %d: %w", t.snap.Meta.Index, err)
		}
		st.lastIndex = t.snap.Meta.Index
		st.conf = t.snap.Meta.ConfState
		r.setApplied(t.snap.Meta.Index)
		r.dropAssigned(t.snap.Meta.Index, ErrOutcomeUnknown)
	}
	if len(t.entries) == 0 {
		return cmds, owners, results, nil
	}
	cmds, owners = cmds[:0], owners[:0]
	done := raft.Index(r.applied.Load()) // the state machine holds these already
	for i := range t.entries {
		e := &t.entries[i]
		if e.Index <= done {
			// Only after a restart from a snapshot ahead of the commit
			// index raft loaded (see Start): the restored state holds it.
			continue
		}
		if e.Type != raft.EntryNormal || len(e.Data) == 0 {
			// The no-op of a new term, or a configuration entry: nothing
			// for the state machine.
			continue
		}
		id, seq, cmd, err := decodeCommand(e.Data)
		if err != nil {
			return cmds, owners, results, fmt.Errorf("replica: committed entry %d: %w", e.Index, err)
		}
		cmds = append(cmds, Command{Index: e.Index, Term: e.Term, Data: cmd})
		owners = append(owners, owner{id: id, seq: seq})
	}
	if len(cmds) > 0 {
		if cap(results) < len(cmds) {
			results = make([]R, len(cmds))
		}
		results = results[:len(cmds)]
		if err := r.sm.Apply(cmds, results); err != nil {
			return cmds, owners, results, fmt.Errorf("replica: applying entries %d..%d: %w", cmds[0].Index, cmds[len(cmds)-1].Index, err)
		}
		for i, o := range owners {
			if o.id == r.cfg.ID {
				r.resolve(o.seq, outcome[R]{res: results[i]})
			}
		}
		clear(results)
		clear(cmds)
	}
	last := t.entries[len(t.entries)-1].Index
	if last <= done {
		return cmds, owners, results, nil
	}
	r.setApplied(last)
	r.dropAssigned(last, errLostInLeaderChange)
	return cmds, owners, results, r.maybeSnapshot(st, last)
}

// errLostInLeaderChange is built once: dropAssigned runs for every batch.
var errLostInLeaderChange = fmt.Errorf("%w: lost in a leadership change", ErrProposalDropped)

// dropAssigned fails this replica's proposals whose assigned index was
// applied without them: another leader's entry took their place.
func (r *Replica[R]) dropAssigned(applied raft.Index, err error) {
	r.mu.Lock()
	n := 0
	var dropped []*Future[R]
	for n < len(r.assigned) && r.assigned[n].index <= applied {
		if f := r.waiters[r.assigned[n].seq]; f != nil {
			delete(r.waiters, r.assigned[n].seq)
			dropped = append(dropped, f)
		}
		n++
	}
	r.assigned = r.assigned[n:]
	if len(r.assigned) == 0 {
		r.assigned = nil
	}
	r.mu.Unlock()
	for _, f := range dropped {
		f.complete(outcome[R]{err: err})
	}
}

// maybeSnapshot snapshots the state machine every SnapshotEntries entries
// and hands the image to the snapshot writer, which stores it and compacts
// the log behind it. The image is taken here, between two applied
// batches, so that it is the state at applied; storing it (a write and a
// sync as large as the state) goes on while entries are applied, and so
// does writing it, if the state machine is a SnapshotCapturer. If the
// writer still stores the previous image, this one waits for a later
// batch.
func (r *Replica[R]) maybeSnapshot(st *snapshotter, applied raft.Index) error {
	if uint64(applied-st.lastIndex) < r.cfg.SnapshotEntries || !r.snapBusy.CompareAndSwap(false, true) {
		return nil
	}
	j := snapJob{index: applied, conf: st.conf}
	if c, ok := r.sm.(SnapshotCapturer); ok {
		j.write = c.CaptureSnapshot()
	} else {
		var buf bytes.Buffer
		if err := r.sm.Snapshot(&buf); err != nil {
			r.snapBusy.Store(false)
			return fmt.Errorf("replica: snapshotting the state machine at %d: %w", applied, err)
		}
		j.data = buf.Bytes()
	}
	st.lastIndex = applied
	// snapc is empty while snapBusy was clear: this does not wait.
	r.snapc <- j
	return nil
}

// snapJob is an image of the state machine at index, with the
// configuration in force there: written (data), or still to write.
type snapJob struct {
	index raft.Index
	conf  raft.ConfState
	data  []byte
	write func(io.Writer) error
}

// runSnapshots is the snapshot writer: it stores the images maybeSnapshot
// takes, one at a time, and compacts the log behind each, keeping
// CompactionOverhead entries for followers that lag a little. Owner: the
// replica; it stops with stopc, after the image it is storing.
func (r *Replica[R]) runSnapshots() {
	defer r.loops.Done()
	for {
		select {
		case <-r.stopc:
			return
		case j := <-r.snapc:
			err := r.storeSnapshot(j)
			r.snapBusy.Store(false)
			if err != nil {
				r.fail(err)
				return
			}
		}
	}
}

func (r *Replica[R]) storeSnapshot(j snapJob) error {
	if j.write != nil {
		var buf bytes.Buffer
		if err := j.write(&buf); err != nil {
			return fmt.Errorf("replica: snapshotting the state machine at %d: %w", j.index, err)
		}
		j.data = buf.Bytes()
	}
	err := r.store.CreateSnapshot(j.index, j.conf, j.data)
	if errors.Is(err, raft.ErrSnapshotOutOfDate) || errors.Is(err, raft.ErrCompacted) {
		// A snapshot from the leader replaced the log in the meantime.
		return nil
	}
	if err != nil {
		return fmt.Errorf("replica: storing the snapshot at %d: %w", j.index, err)
	}
	if overhead := raft.Index(r.cfg.CompactionOverhead); j.index > overhead {
		if err := r.store.Compact(j.index - overhead); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("replica: compacting the log before %d: %w", j.index-overhead, err)
		}
	}
	r.cfg.Logger.Debug("snapshot taken", "id", r.cfg.ID, "index", j.index, "bytes", len(j.data))
	return nil
}
