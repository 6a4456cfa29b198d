package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func mustWrite(t *testing.T, f File, p string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(p), off); err != nil {
		t.Fatal(err)
	}
}

func mustSync(t *testing.T, f File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func contents(t *testing.T, m *MemFS, name string) string {
	t.Helper()
	b, err := m.ReadFile(name)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestMemFSCrashLosesUnsyncedData(t *testing.T) {
	m := NewMemFS(1)
	f, err := m.Create("/a")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "hello", 0)
	mustSync(t, f)
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, " world", 5)
	if got, want := contents(t, m, "/a"), "hello world"; got != want {
		t.Fatalf("before crash: got %q, want %q", got, want)
	}
	m.Crash(CrashOptions{})
	if got, want := contents(t, m, "/a"), "hello"; got != want {
		t.Fatalf("after crash: got %q, want %q", got, want)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, ErrStaleHandle) {
		t.Fatalf("write on old handle: got %v, want ErrStaleHandle", err)
	}
}

func TestMemFSEntryNeedsSyncDir(t *testing.T) {
	m := NewMemFS(1)
	f, _ := m.Create("/a")
	mustWrite(t, f, "data", 0)
	mustSync(t, f)
	m.Crash(CrashOptions{})
	if _, err := m.Open("/a"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("open after crash without SyncDir: got %v, want ErrNotExist", err)
	}
}

func TestMemFSSyncedEntryWithoutSyncedDataIsEmpty(t *testing.T) {
	m := NewMemFS(1)
	f, _ := m.Create("/a")
	mustWrite(t, f, "data", 0)
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	m.Crash(CrashOptions{})
	if got := contents(t, m, "/a"); got != "" {
		t.Fatalf("got %q, want empty file", got)
	}
}

func TestMemFSRenameIsAtomicAndNeedsSyncDir(t *testing.T) {
	for _, syncDir := range []bool{false, true} {
		t.Run(fmt.Sprint("syncdir=", syncDir), func(t *testing.T) {
			m := NewMemFS(7)
			old, _ := m.Create("/snap")
			mustWrite(t, old, "old", 0)
			mustSync(t, old)
			m.SyncDir("/")
			tmp, _ := m.Create("/snap.tmp")
			mustWrite(t, tmp, "new", 0)
			mustSync(t, tmp)
			if err := m.Rename("/snap.tmp", "/snap"); err != nil {
				t.Fatal(err)
			}
			if syncDir {
				m.SyncDir("/")
			}
			m.Crash(CrashOptions{})
			want := "old"
			if syncDir {
				want = "new"
			}
			if got := contents(t, m, "/snap"); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
	// With KeepUnsynced, whatever prefix of the entry operations survives,
	// the name holds either the old or the new file, never nothing.
	for seed := uint64(0); seed < 50; seed++ {
		m := NewMemFS(seed)
		old, _ := m.Create("/snap")
		mustWrite(t, old, "old", 0)
		mustSync(t, old)
		m.SyncDir("/")
		tmp, _ := m.Create("/snap.tmp")
		mustWrite(t, tmp, "new", 0)
		mustSync(t, tmp)
		m.Rename("/snap.tmp", "/snap")
		m.Crash(CrashOptions{KeepUnsynced: true, TearWrites: true})
		if got := contents(t, m, "/snap"); got != "old" && got != "new" {
			t.Fatalf("seed %d: got %q, want old or new", seed, got)
		}
	}
}

func TestMemFSTornWriteKeepsAPrefix(t *testing.T) {
	const payload = "0123456789abcdefghijklmnopqrstuvwxyz"
	seen := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		m := NewMemFS(seed)
		f, _ := m.Create("/a")
		m.SyncDir("/")
		mustWrite(t, f, "base", 0)
		mustSync(t, f)
		mustWrite(t, f, payload, 4)
		m.Crash(CrashOptions{KeepUnsynced: true, TearWrites: true})
		got := contents(t, m, "/a")
		if len(got) < 4 || got[:4] != "base" || got[4:] != payload[:len(got)-4] {
			t.Fatalf("seed %d: got %q, want base followed by a prefix of the write", seed, got)
		}
		seen[len(got)-4] = true
	}
	if !seen[0] || !seen[len(payload)] || len(seen) < 10 {
		t.Fatalf("torn lengths seen %v: want lost, whole and several torn outcomes", seen)
	}
}

func TestMemFSCrashIsDeterministic(t *testing.T) {
	run := func(seed uint64) string {
		m := NewMemFS(seed)
		var out bytes.Buffer
		for i := 0; i < 5; i++ {
			f, _ := m.Create(fmt.Sprintf("/f%d", i))
			for j := 0; j < 10; j++ {
				f.WriteAt([]byte(fmt.Sprintf("w%d-%d;", i, j)), int64(j*6))
				if j == 4 {
					f.Sync()
				}
			}
			if i == 2 {
				m.SyncDir("/")
			}
		}
		m.Crash(CrashOptions{KeepUnsynced: true, TearWrites: true})
		names, _ := m.List("/")
		for _, n := range names {
			fmt.Fprintf(&out, "%s=%q\n", n, contents(t, m, "/"+n))
		}
		return out.String()
	}
	for seed := uint64(0); seed < 20; seed++ {
		if a, b := run(seed), run(seed); a != b {
			t.Fatalf("seed %d: two runs differ:\n%s\nvs\n%s", seed, a, b)
		}
	}
	if run(1) == run(2) && run(2) == run(3) {
		t.Fatalf("seeds 1, 2, 3 give the same crash: the seed is not used")
	}
}

func TestMemFSFailAfter(t *testing.T) {
	m := NewMemFS(1)
	f, _ := m.Create("/a")
	m.FailAfter(1)
	mustWrite(t, f, "one", 0)
	if _, err := f.WriteAt([]byte("two"), 3); !errors.Is(err, ErrInjected) {
		t.Fatalf("second write: got %v, want ErrInjected", err)
	}
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("sync: got %v, want ErrInjected", err)
	}
	if got := contents(t, m, "/a"); got != "one" {
		t.Fatalf("got %q, want the failed write to have no effect", got)
	}
	if got := m.Ops(); got != 2 {
		t.Fatalf("ops: got %d, want 2 (create, write)", got)
	}
}

func TestMemFSFlipBit(t *testing.T) {
	m := NewMemFS(1)
	f, _ := m.Create("/a")
	mustWrite(t, f, "\x00\x00", 0)
	mustSync(t, f)
	m.SyncDir("/")
	if err := m.FlipBit("/a", 9); err != nil {
		t.Fatal(err)
	}
	m.Crash(CrashOptions{})
	if got := contents(t, m, "/a"); got != "\x00\x02" {
		t.Fatalf("got %q, want bit 9 flipped and durable", got)
	}
	if err := m.FlipBit("/a", 16); err == nil {
		t.Fatalf("flip past the end: got nil error")
	}
}

func TestMemFSTruncateAndPreallocate(t *testing.T) {
	m := NewMemFS(1)
	f, _ := m.Create("/a")
	m.SyncDir("/")
	mustWrite(t, f, "abcdef", 0)
	mustSync(t, f)
	if err := f.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if err := f.Preallocate(8); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, m, "/a"); got != "abc\x00\x00\x00\x00\x00" {
		t.Fatalf("got %q", got)
	}
	m.Crash(CrashOptions{})
	if got := contents(t, m, "/a"); got != "abcdef" {
		t.Fatalf("after crash: got %q, want the synced contents", got)
	}
}

// TestFSContract runs the same operations on both implementations.
func TestFSContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   FS
		dir  string
	}{
		{"os", OS, t.TempDir()},
		{"mem", NewMemFS(1), "/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, dir := tc.fs, tc.dir+"/sub"
			if err := fs.MkdirAll(dir); err != nil {
				t.Fatal(err)
			}
			f, err := fs.Create(dir + "/x")
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, f, "hello", 0)
			if err := f.Preallocate(16); err != nil {
				t.Fatal(err)
			}
			if n, _ := f.Size(); n != 16 {
				t.Fatalf("size after preallocate: got %d, want 16", n)
			}
			mustSync(t, f)
			buf := make([]byte, 5)
			if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "hello" {
				t.Fatalf("read: got %q, %v", buf, err)
			}
			if _, err := f.ReadAt(buf, 14); err == nil {
				t.Fatalf("read past the end: got nil error")
			}
			f.Close()
			if err := fs.Rename(dir+"/x", dir+"/y"); err != nil {
				t.Fatal(err)
			}
			if err := fs.SyncDir(dir); err != nil {
				t.Fatal(err)
			}
			names, err := fs.List(dir)
			if err != nil || len(names) != 1 || names[0] != "y" {
				t.Fatalf("list: got %v, %v, want [y]", names, err)
			}
			if _, err := fs.Open(dir + "/x"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("open renamed-away name: got %v, want ErrNotExist", err)
			}
			if err := fs.Remove(dir + "/y"); err != nil {
				t.Fatal(err)
			}
			if names, _ := fs.List(dir); len(names) != 0 {
				t.Fatalf("list after remove: got %v", names)
			}
		})
	}
}
