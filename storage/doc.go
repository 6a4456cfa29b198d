// Package storage is the durable log of a lockstep replica: hard state,
// entries and snapshots in one directory, written through vfs so that the
// simulator can crash the disk. Store implements raft.Storage.
//
// It does not decide anything raft decides: it stores what it is given, in
// order, and reports it back. It does not batch (the runtime calls Save once
// per Ready with everything to persist: group commit), and it reads no
// clock.
//
// # Goroutines
//
// With Options.ZeroFill set to ZeroFillBackground (the default) a Store runs at most one goroutine of its own:
// the preparation of the next segment (create it under a temporary name,
// preallocate it, fill it with zeros, sync it; prepare.go). It is owned by
// the Store: a mutation that leaves the tail a quarter full starts it, the
// Save that rolls to the next segment waits for it and takes its file (and,
// if it failed, prepares the segment itself, returning both errors if that
// fails too), and Close stops it between two 1 MiB writes, waits for it and
// returns its error. It touches only its own file. With ZeroFillAtRoll or
// ZeroFillOff the store runs no goroutines: that is what the simulator,
// which needs the same calls in the same order on every run, must use.
//
// # Layout
//
// The directory holds log segments, NNNNNNNNNNNNNNNN.wal (16 hex digits, a
// sequence number), and snapshots, IIIIIIIIIIIIIIII.snap (the snapshot's
// index). A segment is preallocated to Options.SegmentBytes, and (unless
// ZeroFill is off) filled with written zeros before the log uses it, so
// that a Save only ever overwrites zeros: its fdatasync flushes the batch
// and nothing else, with no extent conversion to commit. It holds
// records, each framed by a 16-byte header with the payload length, a type,
// the payload's CRC32C and the header's own CRC32C (see record.go). The
// first record of a segment repeats the hard state, compaction point and
// last index, so that old segments can be removed; a segment that is full
// ends with a segment-end record. In memory the store keeps an index from
// log index to segment and offset (4 bytes per entry plus one word per run
// of equal terms) and a cache of the most recent entries bounded by
// Options.CacheBytes; entry data is otherwise read back from disk.
//
// # Ordering contracts
//
//   - Save writes the entries before the hard state that refers to them, in
//     one write followed by one fsync. When Save returns nil both are
//     durable; reads (Entries, Term, LastIndex, ...) reflect a Save only once
//     it is durable.
//   - The next segment is prepared, durably, under the temporary name
//     NNNNNNNNNNNNNNNN.wal.tmp. Then the tail is closed by a durable
//     segment-end record, the prepared file is renamed to its segment name,
//     and its header is made durable and its directory entry synced before
//     anything is written after it.
//   - A snapshot file is written to a temporary name, synced, renamed and the
//     directory synced before the log refers to it (ApplySnapshot) and before
//     older snapshots are removed.
//   - Entries are only physically removed (whole segments, in Compact and
//     ApplySnapshot) when they are covered both by the compaction point and by
//     the oldest snapshot kept, so that falling back to that snapshot finds
//     the log it needs. ApplySnapshot is the exception: a snapshot from the
//     leader replaces the whole log, so an older snapshot kept beside it
//     cannot serve as a fallback until the log grows past a newer one.
//   - After a failed write or fsync the store refuses every further mutation
//     (the state of the file is unknown); reopen it to recover.
//
// # Recovery
//
// Open removes every prepared segment (*.wal.tmp) it finds: the log never
// refers to one. It loads the newest snapshot whose checksums verify (a damaged newer one
// is skipped with a warning), then replays every segment in order. The last
// segment may end in a torn tail: damaged bytes (an incomplete header or
// payload, a checksum mismatch, garbage) after which no valid record starts
// anywhere up to the end of the file; the tail is overwritten with zeros,
// reported through slog and Recovery, and writing resumes there. Anything
// else is an error wrapping ErrCorrupt that names the file and offset:
// damage followed by a valid record (a bit flip in the middle of the log), a
// damaged or unclosed segment that is not the last, a missing segment, a gap
// in indexes, entries missing before the first segment with no snapshot
// covering them. Recovery never skips a damaged record and never panics.
//
// The one ambiguity is inherent: damage in the very last record, with
// nothing valid after it, looks exactly like a torn write, and is cut off.
// That record may have been synced and acknowledged (a checksum cannot tell
// rot from a torn write); the log and hard state before it are kept.
package storage
