package storage

import (
	"errors"
	"fmt"
	"log/slog"
)

// Options configures a Store. The zero value is a valid configuration: every
// zero field takes the default given in its comment.
type Options struct {
	// SegmentBytes is the size a segment file is preallocated to, in bytes.
	// Default 64 MiB; at least 64 KiB, at most 1 GiB.
	SegmentBytes int64
	// MaxRecordBytes limits the encoding of one entry, in bytes. Default
	// 8 MiB; at most MaxBatchBytes.
	MaxRecordBytes int
	// MaxBatchBytes limits the encoding of one Save, in bytes. Default
	// 16 MiB; at most SegmentBytes minus 4 KiB (a batch always fits in a
	// fresh segment).
	MaxBatchBytes int
	// CacheBytes bounds the cache of recent entries, in raft.EntrySize
	// units. Default 4 MiB; negative disables the cache.
	CacheBytes int64
	// ZeroFill says whether and when a new segment is filled with written
	// zeros (and synced) before the log writes into it. Writing into blocks
	// that were only fallocated makes every fdatasync commit metadata (the
	// "unwritten extent" conversion, a journal commit); overwriting written
	// zeros is a pure data flush. The cost: every segment is written
	// twice (zeros, then records), and Open of a new store writes its
	// first segment of zeros before it returns. Default ZeroFillBackground.
	ZeroFill ZeroFill
	// KeepSnapshots is how many valid snapshots are kept, at least 1.
	// Default 2: the older one is the fallback if the newest is damaged, and
	// the log is only physically dropped up to it. A snapshot installed with
	// ApplySnapshot replaces the whole log, so until the next CreateSnapshot
	// there is no fallback: a damaged newest snapshot then makes Open fail
	// with an error naming it.
	KeepSnapshots int
	// MaxSnapshotBytes limits the data of a snapshot, in bytes. Default
	// 1 GiB.
	MaxSnapshotBytes int64
	// Logger receives recovery warnings. Default slog.Default().
	Logger *slog.Logger
}

// ZeroFill is how new segments are filled with zeros; see Options.ZeroFill.
type ZeroFill int

const (
	// ZeroFillDefault selects ZeroFillBackground.
	ZeroFillDefault ZeroFill = iota
	// ZeroFillOff only preallocates segments. For vfs.MemFS, where zeros
	// buy nothing.
	ZeroFillOff
	// ZeroFillAtRoll zero-fills the next segment when the tail is full,
	// inside the Save that rolls (one segment of zeros on that Save's
	// path), and runs no goroutine: deterministic, for the simulator and
	// for tests of the zero-filled layout.
	ZeroFillAtRoll
	// ZeroFillBackground zero-fills the next segment ahead of time in a
	// goroutine owned by the Store, started once the tail is a quarter
	// full, so that a Save never waits for zeros unless the log outruns
	// it. Not for the simulator: the goroutine's file operations interleave
	// with the caller's.
	ZeroFillBackground
)

func (o Options) withDefaults() Options {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = int(min(16<<20, o.SegmentBytes-4096))
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = min(8<<20, o.MaxBatchBytes)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 4 << 20
	}
	if o.ZeroFill == ZeroFillDefault {
		o.ZeroFill = ZeroFillBackground
	}
	if o.KeepSnapshots == 0 {
		o.KeepSnapshots = 2
	}
	if o.MaxSnapshotBytes == 0 {
		o.MaxSnapshotBytes = 1 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports whether the options (after defaults) are usable.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.SegmentBytes < 64<<10 || o.SegmentBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("storage: SegmentBytes %d is outside [64 KiB, 1 GiB]", o.SegmentBytes))
	}
	if o.MaxBatchBytes <= 0 || int64(o.MaxBatchBytes) > o.SegmentBytes-4096 {
		errs = append(errs, fmt.Errorf("storage: MaxBatchBytes %d must be positive and at most SegmentBytes-4096", o.MaxBatchBytes))
	}
	if o.MaxRecordBytes <= 0 || o.MaxRecordBytes > o.MaxBatchBytes || o.MaxRecordBytes > maxRecordLimit {
		errs = append(errs, fmt.Errorf("storage: MaxRecordBytes %d must be positive and at most MaxBatchBytes and %d", o.MaxRecordBytes, maxRecordLimit))
	}
	if o.ZeroFill < ZeroFillOff || o.ZeroFill > ZeroFillBackground {
		errs = append(errs, fmt.Errorf("storage: unknown ZeroFill %d", o.ZeroFill))
	}
	if o.KeepSnapshots < 1 {
		errs = append(errs, fmt.Errorf("storage: KeepSnapshots %d must be at least 1", o.KeepSnapshots))
	}
	if o.MaxSnapshotBytes < 0 {
		errs = append(errs, fmt.Errorf("storage: MaxSnapshotBytes %d is negative", o.MaxSnapshotBytes))
	}
	return errors.Join(errs...)
}
