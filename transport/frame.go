package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/lockstep/lockstep/raft"
)

// A frame on a message connection is
//
//	frame   = length:u32le body            length = len(body), 1..MaxFrameBytes
//	body    = record{1,}
//	record  = length:u32le message         message = raft.AppendMessage encoding
//
// The outer length lets the reader refuse an oversized frame before reading
// or allocating anything; the per-record length lets raft.DecodeMessage,
// which wants exactly one message, be used as is.

const (
	frameHeaderBytes  = 4
	recordHeaderBytes = 4
	// maxFrameLimit is the largest MaxFrameBytes accepted (a u32 length,
	// with margin).
	maxFrameLimit = 1 << 30
	// minMessageBytes is the shortest raft message encoding: type, six
	// uvarints, flags, reject hint, entry count and context length.
	minMessageBytes = 11
	// frameReadChunk is how much the read buffer grows per read, so that
	// memory follows the bytes that actually arrive, not the length a peer
	// announces.
	frameReadChunk = 64 << 10
	// batchBytes is the size past which a writer stops adding queued
	// messages to a frame and writes it: large enough that the per-write
	// cost vanishes, small enough that the reader's buffer (keepReadBuffer)
	// is reused and the first message of a batch is not held back long.
	batchBytes = 256 << 10
	// keepReadBuffer is the largest read buffer kept between frames; a
	// rare large frame does not pin its memory for the connection's life.
	keepReadBuffer = 1 << 20
)

// errEmptyFrame is returned for a frame of length zero, which no writer
// produces.
var errEmptyFrame = errors.New("transport: empty frame")

// frameTooLargeError reports a frame whose announced length is over the
// limit. It is returned before any of the frame is read.
type frameTooLargeError struct {
	from  raft.NodeID
	size  uint64
	limit int
}

func (e *frameTooLargeError) Error() string {
	return fmt.Sprintf("transport: frame of %d bytes from node %d exceeds MaxFrameBytes %d", e.size, e.from, e.limit)
}

// frameBuilder accumulates records into one frame. The zero value is ready;
// its buffer is reused from frame to frame.
type frameBuilder struct {
	buf  []byte
	msgs int // records in buf
}

// reset empties the builder, keeping its buffer.
func (f *frameBuilder) reset() {
	f.buf = append(f.buf[:0], 0, 0, 0, 0)
	f.msgs = 0
}

// add appends m as a record and returns the size of the record.
func (f *frameBuilder) add(m *raft.Message) int {
	if len(f.buf) == 0 {
		f.reset()
	}
	start := len(f.buf)
	f.buf = append(f.buf, 0, 0, 0, 0)
	f.buf = raft.AppendMessage(f.buf, m)
	n := len(f.buf) - start - recordHeaderBytes
	binary.LittleEndian.PutUint32(f.buf[start:], uint32(n))
	f.msgs++
	return n + recordHeaderBytes
}

// bodyLen is the length of the frame's body so far.
func (f *frameBuilder) bodyLen() int {
	if len(f.buf) == 0 {
		return 0
	}
	return len(f.buf) - frameHeaderBytes
}

// bytes finishes the frame and returns it, header included. It stays valid
// until the next reset or add.
func (f *frameBuilder) bytes() []byte {
	binary.LittleEndian.PutUint32(f.buf, uint32(f.bodyLen()))
	return f.buf
}

// readFrame reads one frame from r into buf (reused if large enough) and
// returns its body. from names the peer in errors. A length over limit is
// refused before the body is read.
func readFrame(r io.Reader, buf []byte, limit int, from raft.NodeID) ([]byte, error) {
	var hdr [frameHeaderBytes]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return buf, err
	}
	n := uint64(binary.LittleEndian.Uint32(hdr[:]))
	if n == 0 {
		return buf, errEmptyFrame
	}
	if n > uint64(limit) {
		return buf, &frameTooLargeError{from: from, size: n, limit: limit}
	}
	return readGrowing(r, buf, int(n), frameReadChunk)
}

// readGrowing reads exactly n bytes into buf[:0], growing it by at most
// chunk bytes ahead of what has arrived.
func readGrowing(r io.Reader, buf []byte, n, chunk int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		want := min(n-len(buf), chunk)
		buf = slices.Grow(buf, want)
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+got]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// decodeFrame decodes the records of a frame body. The messages own their
// byte slices (raft.DecodeMessage copies). Memory allocated is bounded by a
// constant times len(body): the record count is established, and checked,
// before the slice of messages is allocated.
func decodeFrame(body []byte) ([]raft.Message, error) {
	if len(body) == 0 {
		return nil, errEmptyFrame
	}
	count := 0
	for rest := body; len(rest) > 0; count++ {
		if len(rest) < recordHeaderBytes {
			return nil, fmt.Errorf("transport: frame record %d: truncated length", count)
		}
		n := uint64(binary.LittleEndian.Uint32(rest))
		rest = rest[recordHeaderBytes:]
		if n < minMessageBytes || n > uint64(len(rest)) {
			return nil, fmt.Errorf("transport: frame record %d: length %d, with %d bytes left", count, n, len(rest))
		}
		rest = rest[n:]
	}
	msgs := make([]raft.Message, count)
	for i := range msgs {
		n := binary.LittleEndian.Uint32(body)
		body = body[recordHeaderBytes:]
		m, err := raft.DecodeMessage(body[:n])
		if err != nil {
			return nil, fmt.Errorf("transport: frame record %d: %w", i, err)
		}
		msgs[i] = m
		body = body[n:]
	}
	return msgs, nil
}
