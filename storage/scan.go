package storage

import (
	"fmt"
	"io"

	"github.com/lockstep/lockstep/vfs"
)

// readWindow is how much of a segment recovery reads at a time.
const readWindow = 1 << 20

// segReader reads a segment through a window buffer, so that recovery uses
// memory bounded by the window and the largest record, not the segment.
type segReader struct {
	f      vfs.File
	name   string
	size   int64
	buf    []byte
	bufOff int64
}

// window returns the n bytes at off; the caller checked off+n <= size.
func (r *segReader) window(off int64, n int) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff:][:n], nil
	}
	want := int64(max(n, readWindow))
	if want > r.size-off {
		want = r.size - off
	}
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = r.buf[:0]
		return nil, fmt.Errorf("storage: read %s at offset %d: %w", r.name, off, err)
	}
	r.bufOff = off
	return r.buf[:n], nil
}

// scanResult describes how a segment ended.
type scanResult struct {
	end    int64 // offset just past the last valid record
	closed bool  // the last valid record is a segment end
	// tornEnd > end means bytes [end, tornEnd) are damaged with nothing valid
	// after them: a torn tail if this is the last segment.
	tornEnd    int64
	tornReason string
}

// scanSegment calls fn for every valid record of a segment, in order, with the
// record's type, payload and extent, and reports how the segment ends. Damage
// followed by a valid record is an error; damage followed by nothing valid is
// reported in the result for the caller to judge.
func scanSegment(r *segReader, seq uint64, fn func(typ recordType, payload []byte, off, end int64) error) (scanResult, error) {
	var pos int64
	reason := ""
	for pos < r.size {
		h, err := r.window(pos, int(min(recordHeaderSize, r.size-pos)))
		if err != nil {
			return scanResult{}, err
		}
		if isZero(h) {
			break
		}
		_, n, err := parseHeader(h, seq)
		if err != nil {
			reason = err.Error()
			break
		}
		if int64(n) > r.size-pos-recordHeaderSize {
			reason = fmt.Sprintf("record length %d runs past the end of the file (%d bytes)", n, r.size)
			break
		}
		rec, err := r.window(pos, recordHeaderSize+n)
		if err != nil {
			return scanResult{}, err
		}
		typ, payload, total, err := decodeRecord(rec, seq)
		if err != nil {
			reason = err.Error()
			break
		}
		if err := fn(typ, payload, pos, pos+int64(total)); err != nil {
			return scanResult{}, err
		}
		pos += int64(total)
		if typ == recSegmentEnd {
			return scanResult{end: pos, closed: true}, nil
		}
	}
	last, err := lastNonZero(r, pos)
	if err != nil {
		return scanResult{}, err
	}
	if last < 0 {
		return scanResult{end: pos}, nil
	}
	if reason == "" {
		reason = "zeroed record header"
	}
	if o, ok, err := findValidRecord(r, seq, pos+1, last); err != nil {
		return scanResult{}, err
	} else if ok {
		return scanResult{}, corruptf(r.name, pos, "%s, with a valid record after it at offset %d", reason, o)
	}
	return scanResult{end: pos, tornEnd: last + 1, tornReason: reason}, nil
}

// lastNonZero returns the offset of the last nonzero byte at or after from,
// or -1.
func lastNonZero(r *segReader, from int64) (int64, error) {
	buf := make([]byte, min(readWindow, max(r.size-from, 0)))
	for end := r.size; end > from; {
		start := max(from, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := r.f.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, fmt.Errorf("storage: read %s at offset %d: %w", r.name, start, err)
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i), nil
			}
		}
		end = start
	}
	return -1, nil
}

// findValidRecord looks for a valid record starting anywhere in [from, to].
// The header checksum makes each candidate offset cost a constant, so this
// is linear in the size of the damaged region.
func findValidRecord(r *segReader, seq uint64, from, to int64) (int64, bool, error) {
	for o := from; o <= to && o+recordHeaderSize <= r.size; o++ {
		h, err := r.window(o, recordHeaderSize)
		if err != nil {
			return 0, false, err
		}
		_, n, err := parseHeader(h, seq)
		if err != nil || int64(n) > r.size-o-recordHeaderSize {
			continue
		}
		rec, err := r.window(o, recordHeaderSize+n)
		if err != nil {
			return 0, false, err
		}
		if _, _, _, err := decodeRecord(rec, seq); err == nil {
			return o, true, nil
		}
	}
	return 0, false, nil
}
