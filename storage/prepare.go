package storage

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/lockstep/lockstep/vfs"
)

// A segment is prepared (created, preallocated, zero-filled, synced) under
// a temporary name, NNNNNNNNNNNNNNNN.wal.tmp, and renamed to its segment
// name when the log rolls to it. Open removes every prepared segment it
// finds: whether its zeros became durable is unknown, and a log never
// depends on one.
const preparedSuffix = ".wal.tmp"

func preparedName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, preparedSuffix) }

// zeroChunk is how much of a segment one zero-filling write covers.
const zeroChunk = 1 << 20

// zeros is read-only.
var zeros [zeroChunk]byte

// errPrepareStopped ends a preparation that Close interrupted.
var errPrepareStopped = errors.New("storage: segment preparation stopped by Close")

// prepareSegment prepares segment seq under its temporary name and returns
// it open. It reads only immutable Store fields (fs, dir, opts), so that it
// may run on the preparation goroutine. stop is nil unless it does; if
// not nil, it is checked between zero-filling writes. On error nothing is
// left behind.
func (s *Store) prepareSegment(seq uint64, stop *atomic.Bool) (vfs.File, error) {
	p := s.path(preparedName(seq))
	f, err := s.fs.Create(p)
	if err != nil {
		return nil, fmt.Errorf("storage: prepare segment: %w", err)
	}
	err = s.fillSegment(f, stop)
	if err == nil {
		return f, nil
	}
	f.Close()
	if rerr := s.fs.Remove(p); rerr != nil {
		return nil, errors.Join(err, fmt.Errorf("storage: remove unfinished prepared segment: %w", rerr))
	}
	return nil, err
}

func (s *Store) fillSegment(f vfs.File, stop *atomic.Bool) error {
	size := s.opts.SegmentBytes
	if err := f.Preallocate(size); err != nil {
		return fmt.Errorf("storage: prepare segment: %w", err)
	}
	if s.opts.ZeroFill != ZeroFillOff {
		for off := int64(0); off < size; off += zeroChunk {
			if stop != nil && stop.Load() {
				return errPrepareStopped
			}
			n := min(zeroChunk, size-off)
			if _, err := f.WriteAt(zeros[:n], off); err != nil {
				return fmt.Errorf("storage: zero-fill prepared segment %s at offset %d: %w", f.Name(), off, err)
			}
			// In the background, a chunk at a time, so that the log's
			// own fsyncs never queue behind the whole segment (see
			// writeSynced). A Save that prepares the segment itself
			// waits for all of it anyway: one sync, below.
			if stop != nil && off+n < size {
				if err := f.Sync(); err != nil {
					return fmt.Errorf("storage: zero-fill prepared segment %s: %w", f.Name(), err)
				}
			}
		}
	}
	// Sync here, not with the segment's header: the extent conversions and
	// the zeros' write-back belong off the path of the Save that rolls.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: prepare segment: %w", err)
	}
	return nil
}

// preparation is one run of the preparation goroutine (ZeroFillBackground).
//
// Owner: the Store. maybePrepareLocked starts it (at most one at a time,
// for segment tail.seq+1, once the tail is a quarter full), rollLocked
// collects its result, Close stops it and waits for it. The goroutine
// touches only the new file and the fields below; it never writes the log.
type preparation struct {
	seq  uint64
	stop atomic.Bool
	done chan struct{} // closed when the goroutine has returned
	// f and err are the result, written by the goroutine before done is
	// closed and read only after.
	f   vfs.File
	err error
}

// maybePrepareLocked starts preparing the next segment in the background
// when the options ask for it and the tail is a quarter full: late enough
// that a store that never grows does not write a second segment of zeros,
// early enough that the log rarely waits for it.
func (s *Store) maybePrepareLocked() {
	if s.opts.ZeroFill != ZeroFillBackground || s.next != nil || s.tail == nil || s.closed ||
		(!s.tailClosed && s.tailPos < s.tail.size/4) {
		return
	}
	n := &preparation{seq: s.tail.seq + 1, done: make(chan struct{})}
	s.next = n
	go func() {
		defer close(n.done)
		n.f, n.err = s.prepareSegment(n.seq, &n.stop)
	}()
}

// takePreparedLocked returns segment seq prepared under its temporary name:
// the background preparation's result if there is one (waiting for it), or
// a segment prepared now.
func (s *Store) takePreparedLocked(seq uint64) (vfs.File, error) {
	if n := s.next; n != nil {
		s.next = nil
		<-n.done
		if n.err == nil && n.seq == seq {
			return n.f, nil
		}
		if n.err == nil {
			// Cannot happen: the tail changes only by rolling, which
			// consumes the preparation. Do not trust it.
			n.f.Close()
			n.err = s.fs.Remove(s.path(preparedName(n.seq)))
		}
		if n.err != nil {
			// Handled by preparing again below; if that fails too, both
			// errors are returned.
			s.log.Warn("storage: background segment preparation failed; preparing it now", "segment", n.seq, "err", n.err)
		}
		f, err := s.prepareSegment(seq, nil)
		if err != nil {
			return nil, errors.Join(n.err, err)
		}
		return f, nil
	}
	return s.prepareSegment(seq, nil)
}

// stopPreparingLocked stops the background preparation, waits for it, and
// removes what it prepared. It returns the preparation's error, if it
// failed on its own.
func (s *Store) stopPreparingLocked() error {
	n := s.next
	if n == nil {
		return nil
	}
	s.next = nil
	n.stop.Store(true)
	<-n.done
	if n.err == errPrepareStopped {
		return nil // and nothing is left behind
	}
	if n.err != nil {
		return n.err
	}
	n.f.Close()
	if err := s.fs.Remove(s.path(preparedName(n.seq))); err != nil {
		return fmt.Errorf("storage: remove unused prepared segment: %w", err)
	}
	return nil
}
