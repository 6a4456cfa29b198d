package storage

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

func backgroundOptions() Options {
	opts := testOptions()
	opts.ZeroFill = ZeroFillBackground
	return opts
}

// saveBig appends entries lo..hi-1 of 1000 bytes, one per Save.
func saveBig(t *testing.T, s *Store, lo, hi raft.Index) error {
	t.Helper()
	for i := lo; i < hi; i++ {
		if err := s.Save(raft.HardState{Term: 1, Commit: i}, []raft.Entry{{Term: 1, Index: i, Data: bytes.Repeat([]byte{byte(i)}, 1000)}}); err != nil {
			return err
		}
	}
	return nil
}

func preparedFiles(t *testing.T, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List(testDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, preparedSuffix) {
			out = append(out, n)
		}
	}
	return out
}

// TestBackgroundPreparationRollsAndReopens: with ZeroFillBackground the log
// rolls through segments prepared by the goroutine, Close leaves no
// prepared segment behind, and the log reads back after reopening.
func TestBackgroundPreparationRollsAndReopens(t *testing.T) {
	fs := vfs.NewMemFS(1)
	s, err := Open(fs, testDir, backgroundOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := saveBig(t, s, 1, 301); err != nil {
		t.Fatal(err)
	}
	if n := len(s.segs); n < 4 {
		t.Fatalf("segments: got %d, want at least 4", n)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if p := preparedFiles(t, fs); len(p) != 0 {
		t.Fatalf("prepared segments after Close: got %v, want none", p)
	}
	s, err = Open(fs, testDir, backgroundOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, es := logOf(t, s); len(es) != 300 || !bytes.Equal(es[299].Data, bytes.Repeat([]byte{300 % 256}, 1000)) {
		t.Fatalf("after reopen: got %d entries, want 300 ending with entry 300", len(es))
	}
}

// failingPrepFS fails the creation of prepared segments while fail is set.
type failingPrepFS struct {
	vfs.FS
	fail atomic.Bool
}

var errPrepInjected = errors.New("injected prepare failure")

func (f *failingPrepFS) Create(name string) (vfs.File, error) {
	if f.fail.Load() && strings.HasSuffix(name, preparedSuffix) {
		return nil, errPrepInjected
	}
	return f.FS.Create(name)
}

// TestFailedPreparationFailsTheRollingSave: when the background preparation
// fails and preparing again fails too, the Save that needs the segment
// returns the error; the log is untouched, so the store keeps working once
// the disk does.
func TestFailedPreparationFailsTheRollingSave(t *testing.T) {
	fs := &failingPrepFS{FS: vfs.NewMemFS(1)}
	s, err := Open(fs, testDir, backgroundOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fs.fail.Store(true)
	if err := saveBig(t, s, 1, 200); !errors.Is(err, errPrepInjected) {
		t.Fatalf("saves past the first segment: got %v, want the injected error", err)
	}
	last, _ := s.LastIndex()
	if len(s.segs) != 1 || last == 0 {
		t.Fatalf("after the failed roll: %d segments, last index %d, want 1 segment and some entries", len(s.segs), last)
	}
	fs.fail.Store(false)
	if err := saveBig(t, s, last+1, last+100); err != nil {
		t.Fatalf("save after the disk recovers: %v", err)
	}
}

// TestCloseReturnsBackgroundPreparationError: a preparation that failed
// before any Save needed it is reported by Close, not dropped.
func TestCloseReturnsBackgroundPreparationError(t *testing.T) {
	fs := &failingPrepFS{FS: vfs.NewMemFS(1)}
	s, err := Open(fs, testDir, backgroundOptions())
	if err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if err := saveBig(t, s, 1, 20); err != nil {
		t.Fatal(err)
	}
	if s.next == nil {
		t.Fatalf("no background preparation started at offset %d of %d", s.tailPos, s.tail.size)
	}
	if err := s.Close(); !errors.Is(err, errPrepInjected) {
		t.Fatalf("close: got %v, want the injected error", err)
	}
}

// TestOpenRemovesUnusedPreparedSegment: a prepared segment left by a crash
// (here: garbage under the temporary name, as if its zero-filling was cut
// short) is removed, and the log is unaffected.
func TestOpenRemovesUnusedPreparedSegment(t *testing.T) {
	fs := vfs.NewMemFS(1)
	opts := testOptions()
	opts.ZeroFill = ZeroFillAtRoll
	s, err := Open(fs, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := saveBig(t, s, 1, 11); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := fs.Create(testDir + "/" + preparedName(2))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("half-written zeros"), 0)
	f.Sync()
	f.Close()
	fs.SyncDir(testDir)
	s, err = Open(fs, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p := preparedFiles(t, fs); len(p) != 0 {
		t.Fatalf("prepared segments after Open: got %v, want none", p)
	}
	if _, es := logOf(t, s); len(es) != 10 {
		t.Fatalf("got %d entries, want 10", len(es))
	}
	if err := saveBig(t, s, 11, 200); err != nil {
		t.Fatalf("roll onto segment 2 after the removal: %v", err)
	}
}
