// Package replica is lockstep's runtime: it turns the pure consensus core
// (package raft) into a running member of a replicated state machine that a
// Go program embeds.
//
//	r, err := replica.Start[Result](replica.Config{ID: 1, ClusterID: 7, Peers: peers, Store: store}, sm)
//	res, err := r.Propose(ctx, cmd)                       // applied on this replica, result returned
//	err = r.Read(ctx, replica.ReadLinearizable, func() error { ...query sm... })
//	err = r.Stop()
//
// It owns four things: the raft loop (the only goroutine that touches
// raft.Node), the apply loop (the only goroutine that calls the
// StateMachine's Apply, Snapshot and Restore), the snapshot writer (which
// stores snapshots, and writes the image of a SnapshotCapturer, while
// entries are applied), and the transport to the peers. docs/runtime.md
// draws them with their queues and bounds.
//
// What it does not do: decide anything raft, storage or the state machine
// can decide deterministically (those are where the simulator reaches);
// deduplicate retried commands (a command whose Propose timed out may still
// apply: services that need exactly-once effects put client and request IDs
// in their commands); change membership (not yet).
//
// Ordering contracts:
//   - Each Ready is carried out in the order raft/doc.go prescribes: SendNow,
//     then persistence (LogStore.Save, one fsync; none when only the commit
//     index moved), then SendAfterPersist.
//     Committed entries reach the apply loop in log order; those already
//     durable locally may be handed over before the Ready's own fsync.
//   - Apply sees every committed command exactly once per state machine
//     instance, in log order, after Restore of the latest snapshot if any.
//   - A Propose returns the result of its own command, applied on this
//     replica; ErrProposalDropped means it was not applied;
//     ErrOutcomeUnknown and a context error mean it may or may not apply.
//   - A linearizable Read's query runs after this replica applied every
//     entry committed before Read was called.
//   - A disk or state machine error stops the replica (Done, Err): a replica
//     that cannot persist or apply deterministically must not keep voting.
package replica
