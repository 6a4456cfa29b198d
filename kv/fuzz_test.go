package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

// FuzzDecodeCommand checks that hostile log bytes never panic the decoder or
// Apply, and that whatever decodes re-encodes to an equivalent command.
func FuzzDecodeCommand(f *testing.F) {
	gen := newCmdGen(7, func() (int64, int64) { return 10, 2 })
	for range 64 {
		f.Add(gen.next())
	}
	base := populated(f)
	img := base.snapshot()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, decodeErr := DecodeCommand(b)
		if decodeErr == nil {
			re, err := EncodeCommand(c)
			if err != nil {
				t.Fatalf("decoded command does not encode: %v", err)
			}
			c2, err := DecodeCommand(re)
			if err != nil || !reflect.DeepEqual(c, c2) {
				t.Fatalf("re-encoded command decodes differently: %v", err)
			}
		}
		s, _ := New(Config{MaxTxnOps: 8})
		if err := s.Restore(bytes.NewReader(img)); err != nil {
			t.Fatal(err)
		}
		res, err := s.Apply(s.AppliedIndex()+1, b)
		if err != nil {
			t.Fatal(err)
		}
		if bad := errors.Is(res.Err, ErrBadCommand); bad != (decodeErr != nil) {
			t.Fatalf("apply says %v, decode says %v", res.Err, decodeErr)
		}
	})
}

// FuzzRestore checks that Restore never panics on hostile images, with and
// without a valid checksum around them, and that an accepted image is one the
// store can keep working from.
func FuzzRestore(f *testing.F) {
	f.Add(populated(f).snapshot())
	f.Add(newHarness(f, Config{}).snapshot())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _ := New(Config{})
		_ = s.Restore(bytes.NewReader(b))
		// Reseal the body so the parser, not just the checksum, sees it.
		if len(b) >= len(snapshotMagic)+1+4 {
			body := append([]byte(snapshotMagic+"\x01"), b[len(snapshotMagic)+1:len(b)-4]...)
			b = binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, crcTable))
		}
		if err := s.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		var img bytes.Buffer
		if err := s.Snapshot(&img); err != nil {
			t.Fatal(err)
		}
		s2, _ := New(Config{})
		if err := s2.Restore(bytes.NewReader(img.Bytes())); err != nil {
			t.Fatalf("snapshot of a restored image does not restore: %v", err)
		}
		var img2 bytes.Buffer
		_ = s2.Snapshot(&img2)
		if !bytes.Equal(img.Bytes(), img2.Bytes()) {
			t.Fatal("snapshot is not a fixed point after restore")
		}
		gen := newCmdGen(uint64(len(b)), func() (int64, int64) { return s.Revision(), s.CompactRevision() })
		for i := range 20 {
			if _, err := s.Apply(s.AppliedIndex()+uint64(i)+1, gen.next()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
