package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

// buildLog writes entries 1..n, one per Save, each with a hard state, and
// returns the filesystem (closed store) and the offset of the last entry's
// record, which the last Save wrote without a hard state.
func buildLog(t *testing.T, n raft.Index) (*vfs.MemFS, *Store, int64) {
	t.Helper()
	fs := vfs.NewMemFS(1)
	s := mustOpen(t, fs)
	for i := raft.Index(1); i < n; i++ {
		e := ents(1, i, i+1)
		e[0].Data = append(e[0].Data, make([]byte, 300)...)
		if err := s.Save(raft.HardState{Term: 1, Commit: i - 1}, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(raft.HardState{}, ents(1, n, n+1)); err != nil {
		t.Fatal(err)
	}
	sp := s.idx.spanFor(n)
	off := int64(sp.offs[n-sp.first])
	s.Close()
	return fs, s, off
}

func zeroRange(t *testing.T, fs *vfs.MemFS, name string, from, to int64) {
	t.Helper()
	b, err := fs.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	clear(b[from:min(to, int64(len(b)))])
	if err := fs.WriteFile(name, b); err != nil {
		t.Fatal(err)
	}
}

func TestRecovery(t *testing.T) {
	const n = 400
	type result struct {
		last      raft.Index // want LastIndex (if no error)
		torn      bool       // want a torn tail reported
		errSubstr string     // want an error containing this ("" : no error)
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, fs *vfs.MemFS, s *Store, lastOff int64)
		want   result
	}{
		{"clean zero-filled preallocated tail", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {}, result{last: n}},
		{"torn header of the last record", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			zeroRange(t, fs, s.tail.path, off+7, 1<<30)
		}, result{last: n - 1, torn: true}},
		{"torn payload of the last record", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			zeroRange(t, fs, s.tail.path, off+recordHeaderSize+3, 1<<30)
		}, result{last: n - 1, torn: true}},
		{"garbage after the last record", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			b, _ := fs.ReadFile(s.tail.path)
			copy(b[s.tailPos+100:], "this is not a record")
			fs.WriteFile(s.tail.path, b)
		}, result{last: n, torn: true}},
		{"bit flip in the last record", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			fs.FlipBit(s.tail.path, (off+recordHeaderSize+2)*8)
		}, result{last: n - 1, torn: true}},
		{"bit flip in the middle of the last segment", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			sp := s.idx.spanFor(n - 5)
			fs.FlipBit(s.tail.path, (int64(sp.offs[n-5-sp.first])+recordHeaderSize+4)*8+3)
		}, result{errSubstr: "with a valid record after it"}},
		{"bit flip in a record length in the middle", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			sp := s.idx.spanFor(n - 5)
			fs.FlipBit(s.tail.path, int64(sp.offs[n-5-sp.first])*8+2)
		}, result{errSubstr: "with a valid record after it"}},
		{"bit flip in an older segment", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			fs.FlipBit(s.segs[0].path, 5000*8+1)
		}, result{errSubstr: s0() + " at offset"}},
		{"zeroed sector in an older segment", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			zeroRange(t, fs, s.segs[0].path, 4096, 8192)
		}, result{errSubstr: s0() + " at offset"}},
		{"missing middle segment", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			fs.Remove(s.segs[1].path)
			fs.SyncDir(testDir)
		}, result{errSubstr: "0000000000000002.wal is missing"}},
		{"missing first segment without a snapshot", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			fs.Remove(s.segs[0].path)
			fs.SyncDir(testDir)
		}, result{errSubstr: "are missing before"}},
		{"truncated older segment", func(t *testing.T, fs *vfs.MemFS, s *Store, off int64) {
			f, _ := fs.Open(s.segs[0].path)
			f.Truncate(9000)
			f.Sync()
		}, result{errSubstr: s0()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, s, off := buildLog(t, n)
			if len(s.segs) < 3 {
				t.Fatalf("got %d segments, want at least 3", len(s.segs))
			}
			tc.damage(t, fs, s, off)
			fs.Crash(vfs.CrashOptions{})
			s2, err := Open(fs, testDir, testOptions())
			if tc.want.errSubstr != "" {
				if err == nil {
					t.Fatalf("open: got nil error, want one containing %q", tc.want.errSubstr)
				}
				if !strings.Contains(err.Error(), tc.want.errSubstr) {
					t.Fatalf("open: got %q, want it to contain %q", err, tc.want.errSubstr)
				}
				if strings.Contains(err.Error(), "offset") && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: got %v, want it to wrap ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s2.Close()
			if last, _ := s2.LastIndex(); last != tc.want.last {
				t.Fatalf("last index: got %d, want %d", last, tc.want.last)
			}
			if r := s2.Recovery(); (r.TornBytes > 0) != tc.want.torn {
				t.Fatalf("torn tail reported: got %+v, want torn=%v", r, tc.want.torn)
			}
			// The repaired log takes new entries and survives another crash.
			if err := s2.Save(raft.HardState{Term: 2}, ents(2, tc.want.last+1, tc.want.last+3)); err != nil {
				t.Fatal(err)
			}
			s2.Close()
			fs.Crash(vfs.CrashOptions{})
			s3 := mustOpen(t, fs)
			defer s3.Close()
			if last, _ := s3.LastIndex(); last != tc.want.last+2 {
				t.Fatalf("after repair and reopen: last index %d, want %d", last, tc.want.last+2)
			}
			if r := s3.Recovery(); r.TornBytes != 0 {
				t.Fatalf("second reopen found a torn tail again: %+v", r)
			}
		})
	}
}

func s0() string { return testDir + "/" + segmentName(1) }

func snapshotFixture(t *testing.T) (*vfs.MemFS, *Store) {
	t.Helper()
	fs := vfs.NewMemFS(1)
	s := mustOpen(t, fs)
	s.Save(raft.HardState{Term: 1, Commit: 30}, ents(1, 1, 31))
	if _, err := s.CreateSnapshot(10, raft.ConfState{Voters: []raft.NodeID{1}}, []byte("at ten")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot(20, raft.ConfState{Voters: []raft.NodeID{1, 2}}, []byte("at twenty")); err != nil {
		t.Fatal(err)
	}
	return fs, s
}

func TestTruncatedSnapshotFallsBackToThePreviousOne(t *testing.T) {
	for _, cut := range []int64{0, 5, snapHeaderSize, snapHeaderSize + 3, -1} {
		fs, s := snapshotFixture(t)
		s.Compact(10)
		s.Close()
		p := testDir + "/" + snapshotName(20)
		b, _ := fs.ReadFile(p)
		if cut < 0 {
			cut = int64(len(b)) - 1
		}
		fs.WriteFile(p, b[:cut])
		s = mustOpen(t, fs)
		snap, err := s.Snapshot()
		if err != nil || snap.Meta.Index != 10 || string(snap.Data) != "at ten" {
			t.Fatalf("cut at %d: snapshot: got %+v %q, %v, want the one at 10", cut, snap.Meta, snap.Data, err)
		}
		if r := s.Recovery(); len(r.SkippedSnapshots) != 1 || r.SkippedSnapshots[0] != p {
			t.Fatalf("cut at %d: skipped snapshots: got %v, want [%s]", cut, r.SkippedSnapshots, p)
		}
		if first, _ := s.FirstIndex(); first != 11 {
			t.Fatalf("cut at %d: first index: got %d, want 11", cut, first)
		}
		if last, _ := s.LastIndex(); last != 30 {
			t.Fatalf("cut at %d: last index: got %d, want 30", cut, last)
		}
		s.Close()
	}
}

func TestBitFlipInSnapshotMetadataFallsBack(t *testing.T) {
	fs, s := snapshotFixture(t)
	s.Close()
	fs.FlipBit(testDir+"/"+snapshotName(20), (snapHeaderSize+1)*8)
	s = mustOpen(t, fs)
	if _, cs, _ := s.InitialState(); len(cs.Voters) != 1 {
		t.Fatalf("conf state: got %+v, want the one of the snapshot at 10", cs)
	}
}

// TestCrashBetweenSnapshotWriteAndRename stops the machine after the
// snapshot's temp file is synced but before the rename, for many crash
// outcomes: the old snapshot must be in force and the temp file gone.
func TestCrashBetweenSnapshotWriteAndRename(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		fs, s := snapshotFixture(t)
		fs.FailAfter(4) // create, write header, write data, sync; the rename fails
		_, err := s.CreateSnapshot(25, raft.ConfState{}, []byte("at twenty-five"))
		if !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("seed %d: create snapshot: got %v, want the injected failure at the rename", seed, err)
		}
		if names, _ := fs.List(testDir); !contains(names, snapshotName(25)+".tmp") {
			t.Fatalf("seed %d: the temp file is not there before the crash: %v", seed, names)
		}
		crashAt(fs, seed)
		s = mustOpen(t, fs)
		snap, err := s.Snapshot()
		if err != nil || snap.Meta.Index != 20 {
			t.Fatalf("seed %d: snapshot: got %d, %v, want 20", seed, snap.Meta.Index, err)
		}
		names, _ := fs.List(testDir)
		for _, n := range names {
			if strings.HasSuffix(n, ".tmp") {
				t.Fatalf("seed %d: temp file %s left after recovery", seed, n)
			}
		}
		s.Close()
	}
}

// TestCrashBetweenSnapshotAndReset: ApplySnapshot made the snapshot durable
// but crashed before the log recorded the reset; the log must start at the
// snapshot.
func TestCrashBetweenSnapshotAndReset(t *testing.T) {
	fs, s := snapshotFixture(t)
	fs.FailAfter(6) // snapshot: create, 2 writes, sync, rename, syncdir
	err := s.ApplySnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: 100, Term: 5}, Data: []byte("remote")})
	if !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("apply snapshot: got %v, want the injected failure at the reset record", err)
	}
	fs.Crash(vfs.CrashOptions{})
	s = mustOpen(t, fs)
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 101 || last != 100 {
		t.Fatalf("got first %d last %d, want an empty log after the snapshot at 100", first, last)
	}
	if tm, _ := s.Term(100); tm != 5 {
		t.Fatalf("term(100): got %d, want 5", tm)
	}
}

func crashAt(fs *vfs.MemFS, seed uint64) {
	fs.Crash(vfs.CrashOptions{KeepUnsynced: seed%2 == 1, TearWrites: seed%4 == 3})
}

func contains(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}
