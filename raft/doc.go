// Package raft is lockstep's consensus core: the Raft protocol (Ongaro and
// Ousterhout, "In Search of an Understandable Consensus Algorithm", and
// Ongaro's thesis) as a pure, deterministic state machine.
//
// It does no I/O, starts no goroutines, reads no clock of its own and uses
// no global randomness: inputs are Node.Tick, Node.Step (messages from
// peers), Node.Propose, Node.ReadIndex, Node.TransferLeadership,
// Node.Campaign, the ReportUnreachable / ReportSnapshot callbacks and, with
// lease reads only, the caller's clock (Config.Now); the output is a Ready
// batch that the caller (package replica, or the simulator) persists, sends
// and applies, then acknowledges with Node.Advance. Election timeouts are
// randomized from Config.Seed. The same inputs in the same order therefore
// produce the same outputs, which is what lets the simulator replay a run
// from its seed.
//
// What it does not do: persist anything (Storage is read-only to raft),
// send anything, apply commands, or take snapshots of the state machine.
//
// # The persistence contract
//
// This is stated once, here. For each Ready, in order:
//
//  1. Ready.SendNow may be sent immediately, even before anything in the
//     Ready is durable. It only ever holds a leader's appends, heartbeats,
//     snapshots, TimeoutNow and read answers, sent in a term whose vote is
//     already durable: the leader writes its own log in parallel with
//     replicating it (thesis §10.2.1) because its own entries count towards
//     the commit index only after Advance reports them durable.
//  2. Ready.Snapshot (if any), then Ready.Entries, then Ready.HardState must
//     be made durable, in that order — entries before the hard state whose
//     commit index may refer to them — and synced when Ready.MustSync.
//     Entries replace any stored suffix from their first index on.
//  3. Only then may Ready.SendAfterPersist go out: votes, vote grants and
//     append acknowledgments are promises about durable state (Figure 2,
//     "respond to RPCs only after updating stable storage").
//  4. The Snapshot, then CommittedEntries, are applied in order. A
//     ReadState may be served once its Index is applied.
//  5. Advance(rd) is called. Tick, Step and the other inputs may be called
//     between Ready and Advance, but not Ready itself.
//
// # Protocol features
//
// Randomized elections; PreVote (§9.6); CheckQuorum, with leader step-down
// and votes ignored while a leader is heard from (§4.2.3, §6.2); log
// replication with fast conflict backtracking (§5.3); a no-op entry at the
// start of each term and commitment of current-term entries only by
// counting (§5.4.2, Figure 8); per-follower flow control in probe,
// replicate and snapshot states with an in-flight window bounded by count
// and bytes; batching of entries per message up to MaxBytesPerMsg; a bound
// on uncommitted proposal bytes; ReadIndex (§6.4) on the leader and through
// it from followers, with lease-based reads as an opt-in (§6.4.1), timed
// from the heartbeat round a quorum acknowledged by a clock the caller
// passes in (Config.Now: the only time raft sees besides ticks, so the
// simulator's virtual clock keeps runs deterministic);
// leadership transfer (§3.10); snapshots sent to followers that need
// compacted entries (§7). Membership lives in one tracker with a joint
// (incoming, outgoing) voter configuration plus learners, so that joint
// consensus (§4.3) is a change of configuration, not of structure.
//
// Files: raft.go (state, terms, votes, elections), leader.go, follower.go
// (roles), log.go (stable + unstable log), progress.go and tracker.go (the
// leader's view of followers), quorum.go (majority arithmetic), readonly.go
// (ReadIndex), node.go (the public API and Ready), encoding.go (the binary
// encoding shared by the WAL and the transport).
package raft
