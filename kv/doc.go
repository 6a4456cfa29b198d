// Package kv is the replicated key-value state machine: it applies committed
// commands, in log order, to an MVCC key space with etcd v3.5 semantics.
//
// # Responsibility
//
// kv owns the state an etcd-compatible server replicates: byte-string keys in
// order; a global revision bumped once per write that changes something; per
// key create/mod revision, version and lease; the history of every key back
// to the last compaction, readable at any retained revision and as watch
// events; multi-op transactions with compares; leases and the keys attached
// to them. It defines its own request and response types (mirroring etcd's
// field for field), the binary encoding of commands for the log
// (EncodeCommand, DecodeCommand), and a checksummed snapshot image (Snapshot,
// Restore).
//
// # What kv does not do
//
// kv knows nothing of raft, the network, disks or etcd's protobuf types:
// package server translates etcd requests to kv's types, proposes the encoded
// command through the replication runtime, and turns results back into etcd
// responses. kv has no clock: a lease expires only when the leader proposes
// its LeaseRevoke; keep-alives and TTL countdowns live in the server. kv does
// not deliver watch events to clients: it reports them (Config.Notify) and
// serves them from history (Events); fan-out, filtering and flow control are
// the server's. Limits on request and key size are the server's too; kv
// enforces the ones that decide results (MaxTxnOps) and the ones that keep
// decoding safe (MaxTxnDepth).
//
// # Determinism
//
// Apply is a pure function of the state and the command bytes: no clock, no
// randomness, no goroutines, no map iteration order in results. Two stores
// fed the same commands in the same order return equal results and write
// byte-identical snapshots. A command that is malformed or breaks a rule
// (ErrEmptyKey, ErrTooManyOps, ErrLeaseNotFound, ...) is rejected the same
// way on every replica: the rejection is the command's Result, not a failure.
// Apply returns an error only when the caller broke its contract; the replica
// must then stop.
//
// # Concurrency
//
// Apply and Restore are serialized with each other; the runtime calls them
// from its apply goroutine. The read methods (Range, Events, Lease, Leases,
// Revision, CompactRevision, AppliedIndex, Snapshot, CaptureSnapshot) may
// run concurrently with them and with each other; each sees the state
// between two whole commands. Snapshot and CaptureSnapshot hold the lock
// only to copy the key index, not while writing, so a slow writer does not
// stall Apply; the function CaptureSnapshot returns may write the image
// later, while Apply and Restore go on. Byte slices in results alias the
// store's immutable memory: they stay valid, and must not be modified.
//
// # Differences from etcd, on purpose
//
//   - A txn is rejected with ErrDuplicateKey whenever its chosen branch could
//     write one key twice; etcd's check misses a few such txns (an op list's
//     later deletes against earlier nested puts, and "\x00" range ends).
//   - Range results sorted on a non-key target break ties by key; etcd's
//     order among equal targets is unspecified.
//   - A negative revision in a txn's Range reads the current revision, as a
//     top-level Range does; etcd rejects it in a txn once compacted.
//   - Txns nest at most MaxTxnDepth deep.
//   - A nested txn's response carries the revision as of its end.
//   - LeaseGrant with ID 0 is rejected (ErrInvalidLeaseID): the server picks
//     IDs before proposing, since picking one in Apply would need randomness.
//     kv applies no minimum TTL; that is the server's, before proposing.
//   - Compaction keeps a tombstone written at exactly the compact revision
//     until the next compaction, so Events from the compact revision (the
//     earliest allowed, as in etcd) is complete.
package kv
