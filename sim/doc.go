// Package sim is lockstep's deterministic simulator: a whole cluster of 3
// or 5 replicas in one goroutine, driven by one seed, running the real raft
// core (raft.Node) against a simulated network, simulated disks and
// simulated clients, and checking Raft's safety properties, liveness and
// the linearizability of what clients saw.
//
// What is real and what is simulated: raft is the production code, with
// nothing faked inside it. Each node's runtime (replica.go) handles a Ready
// exactly as raft/doc.go's persistence contract says: SendNow goes out at
// once; Snapshot, Entries and HardState are staged on the Disk and synced
// after a simulated delay, so a crash can land in between; only then go
// SendAfterPersist, the snapshot and committed entries are applied, read
// states are served once applied, and Advance is called. The Disk is either
// a memory model (disk.go: unsynced writes are lost in a crash, except a
// random prefix of them) or package storage over vfs.MemFS (storedisk.go:
// a crash may interrupt the write, lose unsynced data and tear the last
// write; the store is reopened from what the filesystem kept). The state
// machine (machine.go) is package kv, the production one: a client's put,
// compare-and-set and delete travel in the log as kv commands (Put; a Txn
// comparing the value, Put on success, Range on failure; DeleteRange),
// wrapped in an envelope with the client and request ID so that a retry is
// applied once and answered with the first answer; gets are served from
// kv.Store.Range once the read index is applied. Snapshots are kv's image
// plus the deduplication table. Leaders propose kv compactions every
// CompactEvery revisions, so compacted history travels in snapshots too.
//
// The world (world.go) owns the only random source (math/rand/v2 with a
// PCG seeded from Options.Seed), the virtual clock (UnitsPerTick units per
// raft tick) and an event queue ordered by time and then by scheduling
// order; nothing iterates a Go map where order matters. The same seed
// therefore gives the same run, event for event (Result.TraceHash).
//
// A run (Run) has three phases: random faults under a client workload
// (message delay, loss, duplication and reordering; isolated nodes,
// minority/majority splits, one-way cuts, flapping links; crashes and
// restarts); healing, after which a new write must commit within
// LivenessTicks; and quiescence, after which every replica must hold the
// same state and the final reads and the whole history must be
// linearizable (porcupine, per key).
//
// Checks (checker.go, run.go): at most one leader per term; log matching
// on the durable logs; committed entries never change on disk; leader
// completeness when a leader's first entry of its term is durable; state
// machine safety by per-index entry and chained state digests, including
// snapshots restored; liveness after faults stop; convergence; no
// acknowledged write missing from the final state; linearizability.
//
// Running: `go test ./sim` runs a fixed set of seeds and the scenarios.
// `go test ./sim -run 'TestSeeds$' -seeds=10000` (or LOCKSTEP_SIM_SEEDS)
// soaks; -first picks the first seed. A failure prints its seed and the
// command replaying it with a readable trace:
// `go test ./sim -run 'TestSeeds$' -seed=N -v -trace=/tmp/sim-N.trace`.
package sim
