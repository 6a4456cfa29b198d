// Package vfs is the filesystem interface lockstep's durable storage is
// written against, with two implementations: OS, the real operating system,
// and MemFS, an in-memory filesystem that can simulate a power loss.
//
// The interface is deliberately tiny: the files storage needs (create, open,
// positional reads and writes, sync, truncate, preallocate, size) and the
// directory operations that make them visible (remove, rename, list, mkdir,
// sync of a directory). It does not buffer, cache, lock files, or interpret
// paths beyond joining them with "/": callers pass clean slash-separated
// names.
//
// # Durability contract (what callers may rely on, on both implementations)
//
//   - File.WriteAt, File.Truncate and File.Preallocate change what reads
//     return at once, but are durable only after a later File.Sync of that
//     file returns nil.
//   - Creating, renaming or removing a directory entry is durable only after a
//     later FS.SyncDir of the directory holding the entry returns nil. Syncing
//     a file does not make its directory entry durable, and syncing a
//     directory does not make file contents durable.
//   - Directories made by MkdirAll are durable when MkdirAll returns.
//   - A Rename within one directory is atomic: after a crash the entry has
//     either its old or its new name, never both or neither.
//
// # MemFS crash model
//
// MemFS keeps, per file, the durable contents (as of the last Sync) and the
// ordered list of mutations since; per directory, the durable entries (as of
// the last SyncDir) and the ordered list of entry operations since. Crash
// replaces the current state by what a machine would find after a power loss:
//
//   - Every file's contents become its durable contents. With
//     CrashOptions.KeepUnsynced, a prefix of that file's unsynced mutations,
//     of a length chosen at random, is applied on top: writes reach the disk in
//     the order they were issued, and any number of them may have made it.
//   - With CrashOptions.TearWrites, the first mutation that did not make it may
//     instead be torn: a random-length prefix of its bytes is applied (a
//     torn write never keeps later bytes without the earlier ones).
//   - Every directory's entries become its durable entries, and with
//     KeepUnsynced a random-length prefix of its unsynced entry operations is
//     applied on top, in order.
//   - Files are independent: the random choices for one file or directory do
//     not depend on what happened to another.
//   - After Crash every state is durable, handles opened before the crash
//     fail with ErrStaleHandle, and fault injection is reset.
//
// Outside this model MemFS offers two injected faults: FailAfter makes every
// mutating operation after the next n fail (the "machine" stops mid-workload,
// ready for Crash), and FlipBit flips one bit of a file's contents, durable
// and current (media corruption).
//
// # Determinism
//
// MemFS has no goroutines, no clock and no global randomness: the only
// randomness comes from the seed given to NewMemFS, and every iteration over
// files or directories is in a fixed order, so the same sequence of calls with
// the same seed yields the same state bit for bit. MemFS is safe for
// concurrent use (a mutex guards it), but determinism of course requires the
// caller to issue its calls in a deterministic order.
package vfs
