package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

const testDir = "/data"

func testOptions() Options {
	return Options{
		SegmentBytes: 64 << 10,
		ZeroFill:     ZeroFillOff,
		CacheBytes:   2 << 10,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func mustOpen(t testing.TB, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open(fs, testDir, testOptions())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func ents(term raft.Term, lo, hi raft.Index) []raft.Entry {
	var out []raft.Entry
	for i := lo; i < hi; i++ {
		out = append(out, raft.Entry{Term: term, Index: i, Data: []byte(fmt.Sprintf("t%d-i%d", term, i))})
	}
	return out
}

// logOf reads the whole log back.
func logOf(t testing.TB, s raft.Storage) (raft.Index, []raft.Entry) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	es, err := s.Entries(first, last+1, 0)
	if err != nil {
		t.Fatalf("entries %d..%d: %v", first, last, err)
	}
	return first, es
}

func sameEntries(a, b []raft.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Index != b[i].Index || a[i].Term != b[i].Term || a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func TestSaveReadReopen(t *testing.T) {
	fs := vfs.NewMemFS(1)
	s := mustOpen(t, fs)
	hs := raft.HardState{Term: 2, Vote: 1, Commit: 3}
	want := append(ents(1, 1, 4), ents(2, 4, 200)...)
	for i := range want {
		want[i].Data = append(want[i].Data, bytes.Repeat([]byte{'.'}, 500)...)
	}
	for i := 0; i < len(want); i += 7 {
		if err := s.Save(hs, want[i:min(i+7, len(want))]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		if first, got := logOf(t, s); first != 1 || !sameEntries(got, want) {
			t.Fatalf("got first %d and %d entries, want first 1 and %d entries", first, len(got), len(want))
		}
		if tm, err := s.Term(3); err != nil || tm != 1 {
			t.Fatalf("term(3): got %d, %v, want 1", tm, err)
		}
		if tm, err := s.Term(0); err != nil || tm != 0 {
			t.Fatalf("term(0): got %d, %v, want 0", tm, err)
		}
		if _, err := s.Term(200); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("term(200): got %v, want ErrUnavailable", err)
		}
		if _, err := s.Entries(5, 201, 0); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("entries past the end: got %v, want ErrUnavailable", err)
		}
		got, _, _ := s.InitialState()
		if got != hs {
			t.Fatalf("hard state: got %+v, want %+v", got, hs)
		}
		es, err := s.Entries(10, 100, 1)
		if err != nil || len(es) != 1 || es[0].Index != 10 {
			t.Fatalf("entries with maxBytes 1: got %d entries, %v, want exactly entry 10", len(es), err)
		}
		lim := raft.EntrySize(&want[0]) * 10
		es, _ = s.Entries(1, 100, lim)
		if wantN := len(raft.LimitSize(want[:99], lim)); len(es) != wantN {
			t.Fatalf("entries with maxBytes %d: got %d, want %d", lim, len(es), wantN)
		}
	}
	check(s)
	if len(s.segs) < 2 {
		t.Fatalf("got %d segments, want the workload to span several", len(s.segs))
	}
	s.Close()
	fs.Crash(vfs.CrashOptions{})
	s = mustOpen(t, fs)
	check(s)
	if r := s.Recovery(); r.TornBytes != 0 {
		t.Fatalf("clean reopen reported a torn tail: %+v", r)
	}
}

func TestSaveReplacesConflictingSuffix(t *testing.T) {
	fs := vfs.NewMemFS(1)
	s := mustOpen(t, fs)
	s.Save(raft.HardState{Term: 1}, ents(1, 1, 11))
	if err := s.Save(raft.HardState{Term: 3}, ents(3, 6, 8)); err != nil {
		t.Fatal(err)
	}
	want := append(ents(1, 1, 6), ents(3, 6, 8)...)
	if _, got := logOf(t, s); !sameEntries(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	s.Close()
	s = mustOpen(t, fs)
	if _, got := logOf(t, s); !sameEntries(got, want) {
		t.Fatalf("after reopen: got %v, want %v", got, want)
	}
	if err := s.Save(raft.HardState{}, ents(3, 10, 11)); err == nil {
		t.Fatalf("save leaving a gap: got nil error")
	}
}

// TestMatchesMemoryStorage drives Store and raft.MemoryStorage with the same
// random operations and compares everything raft can observe, reopening the
// store now and then.
func TestMatchesMemoryStorage(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		fs := vfs.NewMemFS(seed)
		s := mustOpen(t, fs)
		ms := raft.NewMemoryStorage()
		term := raft.Term(1)
		for step := 0; step < 300; step++ {
			last, _ := ms.LastIndex()
			first, _ := ms.FirstIndex()
			switch r := rng.IntN(100); {
			case r < 60:
				lo := last + 1
				// Raft never truncates what a snapshot covers (it is
				// committed).
				if lo0 := max(first, s.snapIndexLocked()+1); r < 15 && last >= lo0 {
					lo = lo0 + raft.Index(rng.IntN(int(last-lo0+1)))
					term++
				}
				batch := ents(term, lo, lo+raft.Index(1+rng.IntN(20)))
				for i := range batch {
					batch[i].Data = bytes.Repeat([]byte{byte(i)}, rng.IntN(600))
				}
				hs := raft.HardState{Term: term, Commit: lo - 1}
				if err := s.Save(hs, batch); err != nil {
					t.Fatalf("seed %d step %d: save: %v", seed, step, err)
				}
				ms.Append(batch)
				ms.SetHardState(hs)
			case r < 70 && last > first:
				i := first + raft.Index(rng.IntN(int(last-first)))
				snapIdx := s.snapIndexLocked()
				if i > snapIdx {
					if _, err := s.CreateSnapshot(i, raft.ConfState{Voters: []raft.NodeID{1, 2, 3}}, []byte("state")); err != nil {
						t.Fatalf("seed %d step %d: create snapshot: %v", seed, step, err)
					}
					ms.CreateSnapshot(i, raft.ConfState{Voters: []raft.NodeID{1, 2, 3}}, []byte("state"))
				}
			case r < 80:
				if si := s.snapIndexLocked(); si > 0 && si > first-1 {
					c := first + raft.Index(rng.IntN(int(si-first+1)))
					if err := s.Compact(c); err != nil {
						t.Fatalf("seed %d step %d: compact %d: %v", seed, step, c, err)
					}
					ms.Compact(c)
				}
			case r < 83:
				term++
				snap := raft.Snapshot{Meta: raft.SnapshotMeta{Index: max(last, s.snapIndexLocked()) + raft.Index(rng.IntN(30)) + 1, Term: term, ConfState: raft.ConfState{Voters: []raft.NodeID{4}}}, Data: []byte("remote")}
				if err := s.ApplySnapshot(snap); err != nil {
					t.Fatalf("seed %d step %d: apply snapshot: %v", seed, step, err)
				}
				ms.ApplySnapshot(snap)
			case r < 90:
				s.Close()
				s = mustOpen(t, fs)
			}
			compareStorage(t, fmt.Sprintf("seed %d step %d", seed, step), s, ms)
		}
		s.Close()
	}
}

func compareStorage(t *testing.T, where string, s *Store, ms *raft.MemoryStorage) {
	t.Helper()
	f1, _ := s.FirstIndex()
	f2, _ := ms.FirstIndex()
	l1, _ := s.LastIndex()
	l2, _ := ms.LastIndex()
	if f1 != f2 || l1 != l2 {
		t.Fatalf("%s: got first %d last %d, want first %d last %d", where, f1, l1, f2, l2)
	}
	for i := f1 - 1; i <= l1; i++ {
		t1, e1 := s.Term(i)
		t2, e2 := ms.Term(i)
		if t1 != t2 || e1 != e2 {
			t.Fatalf("%s: term(%d): got %d, %v, want %d, %v", where, i, t1, e1, t2, e2)
		}
	}
	e1, err1 := s.Entries(f1, l1+1, 0)
	e2, err2 := ms.Entries(f2, l2+1, 0)
	if err1 != err2 || !sameEntries(e1, e2) {
		t.Fatalf("%s: entries differ: got %d (%v), want %d (%v)", where, len(e1), err1, len(e2), err2)
	}
	h1, c1, _ := s.InitialState()
	h2, c2, _ := ms.InitialState()
	if h1 != h2 || !reflect.DeepEqual(c1, c2) {
		t.Fatalf("%s: initial state: got %+v %+v, want %+v %+v", where, h1, c1, h2, c2)
	}
	sn1, err1 := s.Snapshot()
	sn2, _ := ms.Snapshot()
	if err1 != nil || sn1.Meta.Index != sn2.Meta.Index || sn1.Meta.Term != sn2.Meta.Term || !bytes.Equal(sn1.Data, sn2.Data) {
		t.Fatalf("%s: snapshot: got %+v (%v), want %+v", where, sn1.Meta, err1, sn2.Meta)
	}
}

func TestCompactRemovesWholeSegments(t *testing.T) {
	fs := vfs.NewMemFS(1)
	opts := testOptions()
	opts.KeepSnapshots = 1
	s, err := Open(fs, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1000)
	for i := raft.Index(1); i <= 300; i++ {
		if err := s.Save(raft.HardState{Term: 1, Commit: i}, []raft.Entry{{Term: 1, Index: i, Data: big}}); err != nil {
			t.Fatal(err)
		}
	}
	before := len(s.segs)
	if _, err := s.CreateSnapshot(250, raft.ConfState{Voters: []raft.NodeID{1}}, []byte("s")); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(250); err != nil {
		t.Fatal(err)
	}
	if after := len(s.segs); after >= before || after < 1 {
		t.Fatalf("segments: %d before compaction, %d after, want fewer", before, after)
	}
	if _, err := s.Entries(250, 260, 0); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries at the compaction point: got %v, want ErrCompacted", err)
	}
	s.Close()
	s, err = Open(fs, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 251 {
		t.Fatalf("first index after reopen: got %d, want 251", first)
	}
	if hs := s.HardState(); hs.Commit != 300 {
		t.Fatalf("hard state after dropping its segment: got %+v, want commit 300", hs)
	}
	if _, es := logOf(t, s); len(es) != 50 {
		t.Fatalf("got %d entries, want 50", len(es))
	}
	if err := s.Compact(260); err == nil {
		t.Fatalf("compact past the snapshot: got nil error")
	}
}

// TestConcurrentReadsDuringSaves runs readers against a writer; run with
// -race. Readers check that whatever they see is a consistent log.
func TestConcurrentReadsDuringSaves(t *testing.T) {
	s := mustOpen(t, vfs.NewMemFS(1))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	stopReaders := sync.OnceFunc(func() { close(stop); wg.Wait() })
	// A t.Fatal below must not leave the readers spinning.
	defer stopReaders()
	errc := make(chan error, 4)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				es, err := s.Entries(first, last+1, 0)
				if err != nil && !errors.Is(err, raft.ErrCompacted) && !errors.Is(err, raft.ErrUnavailable) {
					errc <- err
					return
				}
				for i := 1; i < len(es); i++ {
					if es[i].Index != es[i-1].Index+1 || es[i].Term < es[i-1].Term {
						errc <- fmt.Errorf("inconsistent read: %d/%d after %d/%d", es[i].Index, es[i].Term, es[i-1].Index, es[i-1].Term)
						return
					}
				}
			}
		}()
	}
	term := raft.Term(1)
	for i := raft.Index(1); i < 600; i += 5 {
		lo := i
		if i%50 == 1 && i > 10 {
			term++
			lo = i - 3
		}
		if err := s.Save(raft.HardState{Term: term}, ents(term, lo, i+5)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 1 && i > 1 {
			if _, err := s.CreateSnapshot(i-10, raft.ConfState{}, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Compact(i - 20); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopReaders()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

func TestLimits(t *testing.T) {
	s := mustOpen(t, vfs.NewMemFS(1))
	big := make([]byte, testOptions().withDefaults().MaxRecordBytes+1)
	if err := s.Save(raft.HardState{}, []raft.Entry{{Term: 1, Index: 1, Data: big}}); err == nil {
		t.Fatalf("oversized entry: got nil error")
	}
	if err := s.Save(raft.HardState{}, []raft.Entry{{Term: 1, Index: 1}, {Term: 1, Index: 3}}); err == nil {
		t.Fatalf("non-consecutive entries: got nil error")
	}
	if err := (Options{SegmentBytes: 100}).Validate(); err == nil {
		t.Fatalf("tiny segment: got nil error")
	}
}

// slowSnapFS holds the Sync of every snapshot file until release closes.
type slowSnapFS struct {
	vfs.FS
	syncing chan struct{} // receives once a snapshot file's Sync is held
	release chan struct{}
}

func (fs slowSnapFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil || !strings.HasSuffix(name, ".snap.tmp") {
		return f, err
	}
	return slowSnapFile{f, fs}, nil
}

type slowSnapFile struct {
	vfs.File
	fs slowSnapFS
}

func (f slowSnapFile) Sync() error {
	f.fs.syncing <- struct{}{}
	<-f.fs.release
	return f.File.Sync()
}

// Saves go on while a snapshot file is written: a large snapshot must not
// hold up the raft loop's writes for as long as it takes to sync.
func TestSavesDoNotWaitForASnapshotFile(t *testing.T) {
	fs := slowSnapFS{FS: vfs.NewMemFS(1), syncing: make(chan struct{}, 1), release: make(chan struct{})}
	s, err := Open(fs, testDir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(raft.HardState{Term: 1, Commit: 10}, ents(1, 1, 11)); err != nil {
		t.Fatal(err)
	}
	snapped := make(chan error, 1)
	go func() {
		_, err := s.CreateSnapshot(10, raft.ConfState{Voters: []raft.NodeID{1}}, []byte("state at 10"))
		snapped <- err
	}()
	<-fs.syncing
	saved := make(chan error, 1)
	go func() { saved <- s.Save(raft.HardState{Term: 1, Commit: 20}, ents(1, 11, 21)) }()
	select {
	case err := <-saved:
		if err != nil {
			t.Fatalf("save during the snapshot: %v", err)
		}
	case <-time.After(10 * time.Second):
		close(fs.release)
		<-snapped
		t.Fatal("a Save waited for the snapshot file's sync")
	}
	if snap, _ := s.Snapshot(); snap.Meta.Index != 0 {
		t.Fatalf("the snapshot at %d is visible before its file is durable", snap.Meta.Index)
	}
	close(fs.release)
	if err := <-snapped; err != nil {
		t.Fatalf("create snapshot: %v", err)
	}
	if snap, _ := s.Snapshot(); snap.Meta.Index != 10 || string(snap.Data) != "state at 10" {
		t.Fatalf("snapshot after the write: index %d, data %q", snap.Meta.Index, snap.Data)
	}
	if last, _ := s.LastIndex(); last != 20 {
		t.Fatalf("last index %d after the concurrent save, want 20", last)
	}
}

// unsyncedFile records the most bytes written between two syncs.
type unsyncedFile struct {
	vfs.File
	pending, most int
}

func (f *unsyncedFile) WriteAt(p []byte, off int64) (int, error) {
	f.pending += len(p)
	f.most = max(f.most, f.pending)
	return f.File.WriteAt(p, off)
}

func (f *unsyncedFile) Sync() error {
	f.pending = 0
	return f.File.Sync()
}

// A large file is written a chunk at a time, never more than syncChunk
// unsynced, and ends durable and whole.
func TestLargeWritesAreSyncedAChunkAtATime(t *testing.T) {
	fs := vfs.NewMemFS(1)
	if err := fs.MkdirAll(testDir); err != nil {
		t.Fatal(err)
	}
	raw, err := fs.Create(testDir + "/big")
	if err != nil {
		t.Fatal(err)
	}
	f := &unsyncedFile{File: raw}
	data := make([]byte, 5*syncChunk+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := writeSynced(f, data, 9); err != nil {
		t.Fatal(err)
	}
	if f.most > syncChunk || f.pending != 0 {
		t.Fatalf("%d bytes unsynced at most (limit %d), %d at the end", f.most, syncChunk, f.pending)
	}
	if err := fs.SyncDir(testDir); err != nil {
		t.Fatal(err)
	}
	fs.Crash(vfs.CrashOptions{})
	got, err := fs.ReadFile(testDir + "/big")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9+len(data) || !bytes.Equal(got[9:], data) {
		t.Fatalf("after a crash the file holds %d bytes, not the %d written", len(got), 9+len(data))
	}
}
