package sim

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lockstep/lockstep/raft"
)

// TestSameSeedSameTrace: a seed is a complete description of a run. Two
// runs of one seed must produce the same event trace, byte for byte, or a
// failing seed could not be replayed.
func TestSameSeedSameTrace(t *testing.T) {
	for _, seed := range []uint64{7, 4242} {
		var a, b bytes.Buffer
		oa, ob := RandomOptions(seed), RandomOptions(seed)
		oa.Trace, ob.Trace = &a, &b
		ra, rb := Run(oa), Run(ob)
		if ra.TraceHash != rb.TraceHash || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("seed %d: trace hashes %016x and %016x (traces equal: %v)", seed, ra.TraceHash, rb.TraceHash, bytes.Equal(a.Bytes(), b.Bytes()))
		}
		// Tracing must not change the run.
		if rc := Run(RandomOptions(seed)); rc.TraceHash != ra.TraceHash {
			t.Fatalf("seed %d: hash %016x without a trace writer, %016x with one", seed, rc.TraceHash, ra.TraceHash)
		}
		if a.Len() == 0 {
			t.Fatalf("seed %d: empty trace", seed)
		}
	}
}

// biteSeeds runs seeds with a fault injected until the checker fails, and
// requires that it does within max seeds; the same seeds must pass without
// the fault, so the failure is the fault's doing.
func biteSeeds(t *testing.T, max int, adjust func(*Options), inject func(*Options)) {
	t.Helper()
	for seed := uint64(1); seed <= uint64(max); seed++ {
		opt := RandomOptions(seed)
		adjust(&opt)
		clean := Run(opt)
		if clean.Failed() {
			t.Fatalf("seed %d fails without the fault: %s", seed, clean)
		}
		inject(&opt)
		res := Run(opt)
		if res.Failed() {
			t.Logf("seed %d: the checker caught the fault: %s", seed, strings.Join(res.Failures, "; "))
			return
		}
	}
	t.Fatalf("the fault went unnoticed for %d seeds", max)
}

// TestCheckerCatchesForgedVoteGrant: a network that turns vote refusals into
// grants lets two candidates win one term. The checker must notice (at
// most one leader per term, §5.2) within a few seeds.
func TestCheckerCatchesForgedVoteGrant(t *testing.T) {
	biteSeeds(t, 40, func(o *Options) {}, func(o *Options) {
		o.Hooks.Deliver = func(w *World, m *raft.Message) bool {
			if m.Type == raft.MsgVoteResp && m.Reject {
				m.Reject = false
			}
			return true
		}
	})
}

// TestCheckerCatchesLostAcknowledgedWrite: a state machine that
// acknowledges some puts without storing them must fail linearizability
// (a later read misses an acknowledged write).
func TestCheckerCatchesLostAcknowledgedWrite(t *testing.T) {
	biteSeeds(t, 40, func(o *Options) {}, func(o *Options) { o.Hooks.LossyPutEvery = 5 })
}

// TestCheckerCatchesDiskThatForgetsAcknowledgedAppends: a disk that
// acknowledges appends and loses them in a crash breaks the promise behind
// every append acknowledgment and vote; committed entries vanish, and the
// checker must notice.
func TestCheckerCatchesDiskThatForgetsAcknowledgedAppends(t *testing.T) {
	biteSeeds(t, 60, func(o *Options) { o.RealStorage = false }, func(o *Options) { o.Hooks.LyingDiskTail = 3 })
}

// TestRestartAfterCrashBetweenSnapshotAndHardState: raft/doc.go lets the
// runtime make a Ready's snapshot durable before its hard state, so a crash
// can leave a snapshot at index 20 with a hard state committing 18. The
// node must restart from that disk (the snapshot covers only committed
// entries). Found by soak seed 101850 (memory disk, options of commit
// 48fb25e), when raft.NewNode still refused such a disk.
func TestRestartAfterCrashBetweenSnapshotAndHardState(t *testing.T) {
	ms := raft.NewMemoryStorage()
	ms.SetConfState(raft.ConfState{Voters: []raft.NodeID{1, 2, 3}})
	ms.SetHardState(raft.HardState{Term: 2, Vote: 1, Commit: 18})
	if err := ms.ApplySnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: 20, Term: 2, ConfState: raft.ConfState{Voters: []raft.NodeID{1, 2, 3}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := raft.NewNode(raft.Config{ID: 2, Storage: ms}); err != nil {
		t.Fatalf("restart from a durable snapshot ahead of the hard state: %v", err)
	}
}
