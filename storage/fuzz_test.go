package storage

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

// FuzzDecodeRecord: the decoder never panics, and a record it accepts is
// exactly what the encoder produces for that type and payload.
func FuzzDecodeRecord(f *testing.F) {
	e := raft.Entry{Term: 3, Index: 7, Data: []byte("payload")}
	f.Add(appendRecord(nil, 1, recEntry, raft.AppendEntry(nil, &e)), uint64(1))
	f.Add(appendRecord(nil, 9, recHardState, raft.AppendHardState(nil, raft.HardState{Term: 1, Vote: 2, Commit: 3})), uint64(9))
	f.Add(appendRecord(nil, 2, recEntry, nil)[:10], uint64(2))
	f.Add(make([]byte, 40), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, seq uint64) {
		typ, payload, n, err := decodeRecord(b, seq)
		if err != nil {
			return
		}
		if n > len(b) || n != recordHeaderSize+len(payload) {
			t.Fatalf("accepted size %d of %d bytes with payload %d", n, len(b), len(payload))
		}
		if again := appendRecord(nil, seq, typ, payload); !bytes.Equal(again, b[:n]) {
			t.Fatalf("accepted a record that is not what the encoder writes:\n got  %x\n want %x", b[:n], again)
		}
	})
}

// seedLog returns the bytes of a small valid segment.
func seedLog(t testing.TB) []byte {
	fs := vfs.NewMemFS(1)
	opts := testOptions()
	s, err := Open(fs, testDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Save(raft.HardState{Term: 1, Vote: 1}, ents(1, 1, 4))
	s.Save(raft.HardState{Term: 2, Vote: 1, Commit: 2}, ents(2, 3, 6))
	s.SetConfState(raft.ConfState{Voters: []raft.NodeID{1, 2}})
	s.Close()
	b, _ := fs.ReadFile(testDir + "/" + segmentName(1))
	// Keep the fuzzer's inputs small: cut the zero tail, leaving a little.
	end := len(bytes.TrimRight(b, "\x00")) + 32
	return b[:min(end, len(b))]
}

// FuzzRecover: opening a directory whose only segment holds arbitrary bytes
// never panics; when it succeeds, the log it reports is readable and a second
// open (after the repair) reports the same log.
func FuzzRecover(f *testing.F) {
	good := seedLog(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:recordHeaderSize+5])
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/3] ^= 0x10
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(make([]byte, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		fs := vfs.NewMemFS(1)
		fs.MkdirAll(testDir)
		fs.WriteFile(testDir+"/"+segmentName(1), data)
		s, err := Open(fs, testDir, testOptions())
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !bytes.Contains([]byte(err.Error()), []byte("storage: ")) {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		first, last := mustIdx(t, s)
		es, err := s.Entries(first, last+1, 0)
		if err != nil {
			t.Fatalf("entries %d..%d after a successful open: %v", first, last, err)
		}
		hs := s.HardState()
		s.Close()
		s2, err := Open(fs, testDir, testOptions())
		if err != nil {
			t.Fatalf("second open failed after the first succeeded: %v", err)
		}
		defer s2.Close()
		f2, l2 := mustIdx(t, s2)
		es2, _ := s2.Entries(f2, l2+1, 0)
		if f2 != first || l2 != last || !sameEntries(es, es2) || s2.HardState() != hs {
			t.Fatalf("second open differs: %d..%d vs %d..%d", f2, l2, first, last)
		}
	})
}

func mustIdx(t *testing.T, s *Store) (raft.Index, raft.Index) {
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := s.LastIndex()
	return first, last
}
