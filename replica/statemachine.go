package replica

import (
	"io"

	"github.com/lockstep/lockstep/raft"
)

// Command is one committed command handed to the state machine.
type Command struct {
	Index raft.Index
	Term  raft.Term
	Data  []byte
}

// StateMachine is the user's deterministic service. R is the type of the
// result each command produces; it reaches the proposer as Propose's return
// value, so no interface{} is involved.
//
// Determinism: given the same sequence of Apply calls (after the same
// Restore, if any), every replica must reach the same state and produce the
// same results. Apply must not read clocks, random sources, the network or
// anything else outside its arguments and its own state.
//
// Concurrency: Apply, Snapshot and Restore are called from one goroutine,
// the runtime's apply loop, never concurrently with each other. Reads
// (Replica.Read's query function) run on the reader's goroutine, possibly
// concurrently with Apply: the state machine must synchronize them itself
// (a sync.RWMutex is usually enough). So does a SnapshotCapturer's write
// function, on the snapshot writer.
//
// Errors: a rejection that is part of the service's semantics (a failed
// compare, a missing key) belongs in the result, not in Apply's error. An
// error from Apply, Snapshot or Restore means this replica can no longer
// stay identical to the others: the runtime stops the replica loudly.
type StateMachine[R any] interface {
	// Apply applies committed commands in log order and writes the result
	// of cmds[i] to results[i] (len(results) == len(cmds)). cmds is only
	// valid during the call.
	Apply(cmds []Command, results []R) error
	// Snapshot writes a consistent image of the whole state, as of the last
	// command applied.
	Snapshot(w io.Writer) error
	// Restore replaces the whole state with an image written by Snapshot.
	Restore(r io.Reader) error
}

// SnapshotCapturer is a StateMachine whose image can be taken in two
// steps, so that applying need not wait while a large one is written.
// CaptureSnapshot runs on the apply loop between two batches, like
// Snapshot, and must be quick; the function it returns writes the image
// Snapshot would have written then. It runs once, on another goroutine,
// concurrently with Apply and with Restore (of a leader's snapshot that
// arrives meanwhile), so it must not read memory that they reuse.
type SnapshotCapturer interface {
	CaptureSnapshot() func(io.Writer) error
}
