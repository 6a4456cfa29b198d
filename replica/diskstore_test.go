package replica

import (
	"testing"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/storage"
	"github.com/lockstep/lockstep/vfs"
)

// TestDiskStoreDefersCommitOnlySaves: a Save that only moves the commit
// index touches no file; the newest commit index is written with the next
// entries, and when the store is closed. A crash in between loses only the
// commit index, which raft learns again.
func TestDiskStoreDefersCommitOnlySaves(t *testing.T) {
	fs := vfs.NewMemFS(1)
	open := func() LogStore {
		t.Helper()
		s, err := OpenStore(fs, "log", storage.Options{SegmentBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	commit := func(s LogStore) raft.Index {
		t.Helper()
		hs, _, err := s.InitialState()
		if err != nil {
			t.Fatal(err)
		}
		return hs.Commit
	}
	ents := func(from, to raft.Index) []raft.Entry {
		var es []raft.Entry
		for i := from; i <= to; i++ {
			es = append(es, raft.Entry{Term: 1, Index: i, Data: []byte{byte(i)}})
		}
		return es
	}
	save := func(s LogStore, hs raft.HardState, es []raft.Entry, sync bool) {
		t.Helper()
		if err := s.Save(hs, es, sync); err != nil {
			t.Fatal(err)
		}
	}
	// crash loses what was not synced and opens the store again.
	crash := func() LogStore {
		t.Helper()
		fs.Crash(vfs.CrashOptions{})
		return open()
	}
	s := open()
	save(s, raft.HardState{Term: 1, Vote: 1}, ents(1, 3), true)
	ops := fs.Ops()
	save(s, raft.HardState{Term: 1, Vote: 1, Commit: 3}, nil, false)
	if got := fs.Ops(); got != ops {
		t.Fatalf("a commit-only save did %d file operations, want none", got-ops)
	}
	s = crash()
	if got := commit(s); got != 0 {
		t.Fatalf("after a crash: commit %d, want 0 (the commit-only save was not written)", got)
	}
	save(s, raft.HardState{Term: 1, Vote: 1, Commit: 3}, nil, false)
	// The next entries carry the commit index given before them.
	save(s, raft.HardState{}, ents(4, 4), true)
	s = crash()
	if got := commit(s); got != 3 {
		t.Fatalf("after entries and a crash: commit %d, want 3", got)
	}
	// Close writes the newest commit index.
	save(s, raft.HardState{Term: 1, Vote: 1, Commit: 4}, nil, false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = crash()
	if got := commit(s); got != 4 {
		t.Fatalf("after Close: commit %d, want 4", got)
	}
	// A vote or term alone is written at once.
	save(s, raft.HardState{Term: 2, Vote: 2, Commit: 4}, nil, true)
	s = crash()
	if hs, _, err := s.InitialState(); err != nil || hs.Term != 2 || hs.Vote != 2 {
		t.Fatalf("after a vote and a crash: %+v, %v; want term 2, vote 2", hs, err)
	}
	// A Save that fails leaves its hard state (whose commit index counts
	// the entries that were not written) off the disk, Close included.
	save(s, raft.HardState{Term: 2, Vote: 2, Commit: 4}, nil, false)
	big := []raft.Entry{{Term: 2, Index: 5, Data: make([]byte, 2<<20)}}
	if err := s.Save(raft.HardState{Term: 2, Vote: 2, Commit: 5}, big, true); err == nil {
		t.Fatal("a batch over the store's limit was saved")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after a refused batch: %v", err)
	}
	s = open()
	defer s.Close()
	if got := commit(s); got > 4 {
		t.Fatalf("after a failed save: commit %d, past the last entry", got)
	}
}
