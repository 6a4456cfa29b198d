package storage

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

// model is what a crash may leave: the uncompacted log since the last reset,
// the hard state and the snapshot index.
type model struct {
	base     raft.Index // the log holds base+1..; base is the reset point
	baseTerm raft.Term
	log      []raft.Entry
	hs       raft.HardState
	snap     raft.Index
}

func (m model) clone() model {
	m.log = append([]raft.Entry(nil), m.log...)
	return m
}

func (m model) last() raft.Index { return m.base + raft.Index(len(m.log)) }

func (m model) term(i raft.Index) raft.Term {
	if i == m.base {
		return m.baseTerm
	}
	return m.log[i-m.base-1].Term
}

// step is one scripted operation: it runs on the store and returns the
// model after it, and the intermediate states a crash in the middle may
// leave besides the states before and after.
type step struct {
	name string
	run  func(s *Store) error
	next func(m model) (after model, partial []model)
}

func saveStep(hs raft.HardState, es []raft.Entry) step {
	return step{
		name: fmt.Sprintf("save %d..%d", es[0].Index, es[len(es)-1].Index),
		run:  func(s *Store) error { return s.Save(hs, es) },
		next: func(m model) (model, []model) {
			kept := m.log[:es[0].Index-m.base-1]
			var partial []model
			for j := 1; j <= len(es); j++ {
				p := m.clone()
				p.log = append(append([]raft.Entry(nil), kept...), es[:j]...)
				partial = append(partial, p)
			}
			after := partial[len(partial)-1].clone()
			after.hs = hs
			return after, partial
		},
	}
}

func snapshotStep(i raft.Index) step {
	return step{
		name: fmt.Sprintf("snapshot %d", i),
		run: func(s *Store) error {
			_, err := s.CreateSnapshot(i, raft.ConfState{Voters: []raft.NodeID{1}}, []byte(fmt.Sprint("state ", i)))
			return err
		},
		next: func(m model) (model, []model) { m = m.clone(); m.snap = i; return m, nil },
	}
}

func compactStep(i raft.Index) step {
	return step{
		name: fmt.Sprintf("compact %d", i),
		run:  func(s *Store) error { return s.Compact(i) },
		next: func(m model) (model, []model) { return m, nil },
	}
}

func applySnapshotStep(i raft.Index, t raft.Term) step {
	return step{
		name: fmt.Sprintf("apply snapshot %d", i),
		run: func(s *Store) error {
			return s.ApplySnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: i, Term: t}, Data: []byte("remote")})
		},
		next: func(m model) (model, []model) {
			return model{base: i, baseTerm: t, hs: m.hs, snap: i}, nil
		},
	}
}

func crashScript() []step {
	var steps []step
	pad := func(es []raft.Entry) []raft.Entry {
		for i := range es {
			es[i].Data = append(es[i].Data, bytes.Repeat([]byte{'~'}, 700)...)
		}
		return es
	}
	idx := raft.Index(1)
	for b := 0; b < 12; b++ {
		n := raft.Index(1 + b%5)
		// Commit stays below 25, which the next save overwrites: raft
		// never replaces a committed entry, and a crash that tears that
		// save would otherwise leave a commit index past the log.
		steps = append(steps, saveStep(raft.HardState{Term: 1, Vote: 1, Commit: min(idx-1, 24)}, pad(ents(1, idx, idx+n))))
		idx += n
	}
	steps = append(steps,
		saveStep(raft.HardState{Term: 2, Vote: 2, Commit: 20}, pad(ents(2, 25, 40))), // overwrites 25..
		snapshotStep(20),
		saveStep(raft.HardState{Term: 2, Vote: 2, Commit: 30}, pad(ents(2, 40, 80))),
		compactStep(15),
		snapshotStep(35),
		compactStep(30),
		saveStep(raft.HardState{Term: 3, Vote: 3, Commit: 60}, pad(ents(3, 70, 72))),
		applySnapshotStep(200, 4),
		saveStep(raft.HardState{Term: 4, Vote: 3, Commit: 200}, pad(ents(4, 201, 206))),
		saveStep(raft.HardState{Term: 4, Vote: 3, Commit: 205}, nil2()),
	)
	return steps
}

func nil2() []raft.Entry { return ents(4, 206, 207) }

// check reports whether the recovered store shows state m.
func (m model) check(s *Store) error {
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last != m.last() {
		return fmt.Errorf("last index %d, want %d", last, m.last())
	}
	if first-1 < m.base {
		return fmt.Errorf("first index %d, want at least %d", first, m.base+1)
	}
	if t, err := s.Term(first - 1); err != nil || t != m.term(first-1) {
		return fmt.Errorf("term(%d) = %d, %v, want %d", first-1, t, err, m.term(first-1))
	}
	es, err := s.Entries(first, last+1, 0)
	if err != nil {
		return err
	}
	if !sameEntries(es, m.log[first-m.base-1:]) {
		return fmt.Errorf("entries %d..%d differ", first, last)
	}
	if hs := s.HardState(); hs != m.hs {
		return fmt.Errorf("hard state %+v, want %+v", hs, m.hs)
	}
	snap, err := s.Snapshot()
	if err != nil || snap.Meta.Index != m.snap {
		return fmt.Errorf("snapshot %d (%v), want %d", snap.Meta.Index, err, m.snap)
	}
	return nil
}

// TestCrashAtEveryPoint runs the script, stopping the machine after each
// mutating filesystem operation in turn, crashes the disk in several ways,
// and checks that recovery yields the state after the last acknowledged
// step, or a state the interrupted step may legitimately leave: everything
// acknowledged (fsynced) survives, and nothing is reported that was not.
func TestCrashAtEveryPoint(t *testing.T) { crashAtEveryPoint(t, testOptions()) }

// TestCrashAtEveryPointWithZeroFilledSegments is TestCrashAtEveryPoint
// with segments prepared as on a real disk (zero-filled under a temporary
// name, renamed when the log rolls to them): a crash at every step of a
// roll recovers too.
func TestCrashAtEveryPointWithZeroFilledSegments(t *testing.T) {
	opts := testOptions()
	opts.ZeroFill = ZeroFillAtRoll
	crashAtEveryPoint(t, opts)
}

func crashAtEveryPoint(t *testing.T, opts Options) {
	script := crashScript()
	// One clean run to count the operations.
	fs := vfs.NewMemFS(0)
	s, err := Open(fs, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range script {
		if err := st.run(s); err != nil {
			t.Fatalf("clean run: %s: %v", st.name, err)
		}
	}
	total := fs.Ops()
	s.Close()
	crashes := []vfs.CrashOptions{{}, {KeepUnsynced: true}, {KeepUnsynced: true, TearWrites: true}}
	runs := 0
	for k := int64(0); k <= total; k++ {
		for ci, co := range crashes {
			seed := uint64(k)*3 + uint64(ci)
			fs := vfs.NewMemFS(seed)
			fs.FailAfter(k)
			m := model{}
			candidates := []model{m}
			s, err := Open(fs, testDir, opts)
			if err == nil {
				for _, st := range script {
					after, partial := st.next(m)
					if err = st.run(s); err != nil {
						candidates = append(append(candidates, partial...), after)
						break
					}
					m = after
					candidates = []model{m}
				}
			}
			if err != nil && !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("stop after %d ops: unexpected error %v", k, err)
			}
			if err == nil {
				candidates = []model{m}
			}
			fs.Crash(co)
			runs++
			s, err = Open(fs, testDir, opts)
			if err != nil {
				t.Fatalf("stop after %d ops, crash %+v: recovery failed: %v", k, co, err)
			}
			var errs []error
			ok := false
			for _, c := range candidates {
				if e := c.check(s); e == nil {
					ok = true
					break
				} else {
					errs = append(errs, e)
				}
			}
			if !ok {
				t.Fatalf("stop after %d ops, crash %+v: recovered state matches no allowed state: %v", k, co, errs)
			}
			// The recovered store keeps working.
			last, _ := s.LastIndex()
			if err := s.Save(raft.HardState{Term: 9, Commit: s.HardState().Commit}, ents(9, last+1, last+2)); err != nil {
				t.Fatalf("stop after %d ops: save after recovery: %v", k, err)
			}
			s.Close()
		}
	}
	t.Logf("%d operations in the script, %d crash runs", total, runs)
}
