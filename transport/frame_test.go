package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/lockstep/lockstep/raft"
)

func sampleMessages() []raft.Message {
	return []raft.Message{
		{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3, Commit: 7, Context: []byte("read-1")},
		{Type: raft.MsgApp, From: 1, To: 2, Term: 3, LogTerm: 2, Index: 9, Commit: 7, Entries: []raft.Entry{
			{Term: 3, Index: 10, Data: []byte("sixteen bytes!!!")},
			{Term: 3, Index: 11, Type: raft.EntryConfChange, Data: []byte{1, 2, 3}},
		}},
		{Type: raft.MsgAppResp, From: 2, To: 1, Term: 3, Index: 9, Reject: true, RejectHint: 4, LogTerm: 1},
		{Type: raft.MsgSnap, From: 1, To: 2, Term: 3, Snapshot: &raft.Snapshot{
			Meta: raft.SnapshotMeta{Index: 5, Term: 2, ConfState: raft.ConfState{Voters: []raft.NodeID{1, 2, 3}, Learners: []raft.NodeID{4}}},
			Data: []byte("image"),
		}},
	}
}

func encodeFrame(msgs []raft.Message) []byte {
	var fb frameBuilder
	fb.reset()
	for i := range msgs {
		fb.add(&msgs[i])
	}
	return append([]byte(nil), fb.bytes()...)
}

func TestFrameRoundTrip(t *testing.T) {
	want := sampleMessages()
	frame := encodeFrame(want)
	body, err := readFrame(bytes.NewReader(frame), nil, 1<<20, 1)
	if err != nil {
		t.Fatalf("readFrame: %v", err)
	}
	got, err := decodeFrame(body)
	if err != nil {
		t.Fatalf("decodeFrame: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		a, b := raft.AppendMessage(nil, &got[i]), raft.AppendMessage(nil, &want[i])
		if !bytes.Equal(a, b) {
			t.Errorf("message %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadFrameRefusesAnOversizedLengthBeforeAllocating(t *testing.T) {
	hdr := binary.LittleEndian.AppendUint32(nil, 0xFFFFFFFF)
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		_, err = readFrame(bytes.NewReader(hdr), nil, 1<<20, 7)
	})
	var tooLarge *frameTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("got error %v, want a frameTooLargeError", err)
	}
	const want = "transport: frame of 4294967295 bytes from node 7 exceeds MaxFrameBytes 1048576"
	if err.Error() != want {
		t.Errorf("got error %q, want %q", err, want)
	}
	// The reader and the error value; not a buffer of the announced size.
	if allocs > 3 {
		t.Errorf("got %v allocations, want at most 3", allocs)
	}
}

func TestReadFrameMemoryFollowsArrivingBytes(t *testing.T) {
	// A peer announces a frame just under the limit and sends 10 bytes.
	const limit = 64 << 20
	in := binary.LittleEndian.AppendUint32(nil, limit)
	in = append(in, make([]byte, 10)...)
	allocated := bytesAllocated(func() {
		_, err := readFrame(bytes.NewReader(in), nil, limit, 1)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got error %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
	if bound := uint64(2*frameReadChunk + 1024); allocated > bound {
		t.Errorf("got %d bytes allocated for a 10-byte partial frame, want at most %d", allocated, bound)
	}
}

func TestDecodeFrameRejectsMalformedBodies(t *testing.T) {
	valid := encodeFrame(sampleMessages()[:1])[frameHeaderBytes:]
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"truncated record length", []byte{1, 0}},
		{"record length past the end", binary.LittleEndian.AppendUint32(nil, 1000)},
		{"record shorter than any message", append(binary.LittleEndian.AppendUint32(nil, 2), 8, 1)},
		{"trailing garbage", append(append([]byte(nil), valid...), 1)},
		{"unknown message type", func() []byte {
			b := append([]byte(nil), valid...)
			b[recordHeaderBytes] = 200
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msgs, err := decodeFrame(tt.body); err == nil {
				t.Errorf("got %d messages and no error, want an error", len(msgs))
			}
		})
	}
}

// bytesAllocated returns how many heap bytes f allocated (approximately:
// other goroutines' allocations count too).
func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzReadAndDecodeFrame feeds arbitrary bytes to the frame reader and
// decoder: they must not panic, and must not allocate more than a constant
// times the input (plus one read chunk), whatever lengths and counts the
// input announces.
func FuzzReadAndDecodeFrame(f *testing.F) {
	msgs := sampleMessages()
	f.Add(encodeFrame(msgs))
	for i := range msgs {
		f.Add(encodeFrame(msgs[i : i+1]))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0xFF, 0xFF, 0x0F, 0x00, 1, 2, 3})
	f.Add(binary.LittleEndian.AppendUint32([]byte{8, 0, 0, 0}, 0xFFFFFFF0))
	f.Add(encodeFrame(msgs)[:20])
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, in []byte) {
		var msgs []raft.Message
		var err error
		allocated := bytesAllocated(func() {
			var body []byte
			body, err = readFrame(bytes.NewReader(in), nil, limit, 1)
			if err == nil {
				msgs, err = decodeFrame(body)
			}
		})
		if bound := uint64(32*len(in) + 2*frameReadChunk + 4096); allocated > bound {
			t.Fatalf("got %d bytes allocated for %d bytes of input, want at most %d", allocated, len(in), bound)
		}
		if err != nil {
			return
		}
		// What decodes must survive a round trip. (The input itself need
		// not come back: uvarints and flags have non-canonical forms.)
		once := encodeFrame(msgs)
		body, err := readFrame(bytes.NewReader(once), nil, limit, 1)
		if err != nil {
			t.Fatalf("reading re-encoded frame: %v", err)
		}
		again, err := decodeFrame(body)
		if err != nil {
			t.Fatalf("decoding re-encoded frame: %v", err)
		}
		if twice := encodeFrame(again); !bytes.Equal(twice, once) {
			t.Fatalf("second round trip gave %x, want %x", twice, once)
		}
	})
}
