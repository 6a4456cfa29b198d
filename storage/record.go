package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A record is a 16-byte header followed by a payload:
//
//	[0:4)   payload length, little-endian
//	[4]     record type
//	[5:8)   zero (reserved)
//	[8:12)  CRC32C of the payload
//	[12:16) CRC32C of bytes [0:12) followed by the segment's sequence number
//	        (8 bytes, little-endian)
//
// The header has its own checksum so that recovery can tell, at any offset
// and in constant time, whether a valid record starts there: that is how a
// torn tail (nothing valid after the damage) is told apart from corruption in
// the middle of the log (valid records after the damage). Mixing the segment
// number into it means a record copied or left over from another segment is
// never accepted.
const recordHeaderSize = 16

// maxRecordLimit is the hard limit on a payload length read from disk,
// whatever the options; a length is also checked against the bytes left in
// the file before anything is allocated.
const maxRecordLimit = 256 << 20

type recordType uint8

const (
	recSegmentHeader recordType = iota + 1 // first record of every segment
	recEntry                               // one raft.Entry
	recHardState                           // raft.HardState
	recConfState                           // the bootstrap raft.ConfState
	recCompact                             // log compacted up to (index, term)
	recReset                               // log replaced by a snapshot at (index, term)
	recSegmentEnd                          // last record of a full segment
	maxRecordType
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func headerCRC(h []byte, seq uint64) uint32 {
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seq)
	return crc32.Update(crc32.Update(0, castagnoli, h[:12]), castagnoli, s[:])
}

// beginRecord reserves a header at the end of b; the caller appends the
// payload and calls finishRecord with the returned start.
func beginRecord(b []byte) ([]byte, int) {
	start := len(b)
	var h [recordHeaderSize]byte
	return append(b, h[:]...), start
}

// finishRecord fills in the header of the record that starts at start and
// runs to the end of b.
func finishRecord(b []byte, start int, seq uint64, typ recordType) {
	h := b[start : start+recordHeaderSize]
	payload := b[start+recordHeaderSize:]
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	h[4] = byte(typ)
	h[5], h[6], h[7] = 0, 0, 0
	binary.LittleEndian.PutUint32(h[8:12], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(h[12:16], headerCRC(h, seq))
}

// appendRecord appends a whole record with the given payload.
func appendRecord(b []byte, seq uint64, typ recordType, payload []byte) []byte {
	b, start := beginRecord(b)
	b = append(b, payload...)
	finishRecord(b, start, seq, typ)
	return b
}

// parseHeader validates a record header and returns the record's type and
// payload length. It does not look at the payload.
func parseHeader(h []byte, seq uint64) (recordType, int, error) {
	if len(h) < recordHeaderSize {
		return 0, 0, fmt.Errorf("torn record header (%d of %d bytes)", len(h), recordHeaderSize)
	}
	if got, want := binary.LittleEndian.Uint32(h[12:16]), headerCRC(h, seq); got != want {
		return 0, 0, fmt.Errorf("record header crc mismatch (got %08x, want %08x)", got, want)
	}
	typ := recordType(h[4])
	if typ == 0 || typ >= maxRecordType {
		return 0, 0, fmt.Errorf("unknown record type %d", typ)
	}
	if h[5]|h[6]|h[7] != 0 {
		return 0, 0, fmt.Errorf("nonzero reserved header bytes")
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	if n > maxRecordLimit {
		return 0, 0, fmt.Errorf("record length %d exceeds the limit %d", n, maxRecordLimit)
	}
	return typ, int(n), nil
}

// decodeRecord decodes the record at the start of b, written in segment seq.
// It returns the type, the payload (aliasing b) and the record's total size.
// It never panics and never allocates: the length is checked against len(b).
func decodeRecord(b []byte, seq uint64) (recordType, []byte, int, error) {
	typ, n, err := parseHeader(b, seq)
	if err != nil {
		return 0, nil, 0, err
	}
	if n > len(b)-recordHeaderSize {
		return 0, nil, 0, fmt.Errorf("torn record: payload of %d bytes, %d present", n, len(b)-recordHeaderSize)
	}
	payload := b[recordHeaderSize : recordHeaderSize+n]
	if got, want := binary.LittleEndian.Uint32(b[8:12]), crc32.Checksum(payload, castagnoli); got != want {
		return 0, nil, 0, fmt.Errorf("record payload crc mismatch (got %08x, want %08x)", got, want)
	}
	return typ, payload, recordHeaderSize + n, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
