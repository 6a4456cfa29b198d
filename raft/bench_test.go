package raft

import (
	"fmt"
	"testing"
)

// BenchmarkPropose measures the consensus core alone: a 3-node in-memory
// cluster (MemoryStorage, messages handed over in memory, no I/O), one op
// being a proposal (or a batch of proposals in one Propose call) on the
// leader followed by everything it causes until the cluster is quiet:
// appends, acknowledgments, commit and the apply hand-off on all nodes.
func BenchmarkPropose(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("payload=%dB/batch=%d", size, batch), func(b *testing.B) {
				benchmarkPropose(b, size, batch)
			})
		}
	}
}

func benchmarkPropose(b *testing.B, size, batch int) {
	c := newCluster(3, nil)
	c.discardApplied = true
	c.campaign(1)
	leader := c.nodes[1]
	payload := make([]byte, size)
	data := make([][]byte, batch)
	for i := range data {
		data[i] = payload
	}
	b.ReportAllocs()
	b.SetBytes(int64(size * batch))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := leader.Propose(data...); err != nil {
			b.Fatal(err)
		}
		c.stabilize()
		if i%256 == 255 {
			// Keep the in-memory logs short, as a runtime compacts behind
			// its snapshots.
			for _, id := range c.ids {
				applied := c.nodes[id].Status().Applied
				if snap, _ := c.storage[id].Snapshot(); applied > snap.Meta.Index {
					if err := c.compact(id, applied); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.StopTimer()
	if got := leader.Status().Commit; got < Index(b.N*batch) {
		b.Fatalf("commit index after %d proposals: got %d, want at least %d", b.N*batch, got, b.N*batch)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "proposals/s")
}

// BenchmarkReadIndex measures one linearizable read per op on the leader of
// a 3-node in-memory cluster, with ReadOnlySafe (a heartbeat round per read)
// and ReadOnlyLeaseBased (answered from the lease).
func BenchmarkReadIndex(b *testing.B) {
	for _, lease := range []bool{false, true} {
		name := "safe"
		if lease {
			name = "lease"
		}
		b.Run(name, func(b *testing.B) {
			c := newCluster(3, func(cfg *Config) {
				cfg.CheckQuorum = true
				if lease {
					cfg.ReadOnly = ReadOnlyLeaseBased
				}
			})
			c.discardApplied = true
			c.campaign(1)
			ctx := []byte("read")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.nodes[1].ReadIndex(ctx); err != nil {
					b.Fatal(err)
				}
				c.stabilize()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}
