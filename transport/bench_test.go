package transport

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/testcert"
	"github.com/lockstep/lockstep/raft"
)

// counter is a Handler that counts messages and wakes a waiting sender.
type counter struct {
	received atomic.Int64
	notify   chan struct{}
}

func (c *counter) HandleMessages(msgs []raft.Message) {
	c.received.Add(int64(len(msgs)))
	select {
	case c.notify <- struct{}{}:
	default:
	}
}
func (c *counter) ReportUnreachable(raft.NodeID)    {}
func (c *counter) ReportSnapshot(raft.NodeID, bool) {}

// BenchmarkSend measures one-way throughput between two transports on
// loopback: MsgApp with one entry of the given size, sent 64 per Send
// call, at most 4096 in flight (so the 8192-message queue never drops).
// Bytes/s counts entry payload only; allocs/op covers both ends.
func BenchmarkSend(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("entry=%dB", size), func(b *testing.B) { benchmarkSend(b, size, nil) })
	}
	b.Run("entry=1024B/mTLS", func(b *testing.B) {
		cert, pool := testcert.New(b)
		benchmarkSend(b, 1024, &tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, ServerName: "lockstep-test", MinVersion: tls.VersionTLS13,
		})
	})
}

func benchmarkSend(b *testing.B, size int, tlsCfg *tls.Config) {
	const batch, window = 64, 4096
	lnA, lnB := listen(b), listen(b)
	peers := map[raft.NodeID]string{1: lnA.Addr().String(), 2: lnB.Addr().String()}
	recv := &counter{notify: make(chan struct{}, 1)}
	a, err := New(Config{ClusterID: 1, NodeID: 1, Listener: lnA, Peers: peers, QueueLen: 2 * window, TLS: tlsCfg}, &counter{notify: make(chan struct{}, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	bt, err := New(Config{ClusterID: 1, NodeID: 2, Listener: lnB, Peers: peers, TLS: tlsCfg}, recv)
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	if err := a.Start(); err != nil {
		b.Fatal(err)
	}
	if err := bt.Start(); err != nil {
		b.Fatal(err)
	}
	a.Send([]raft.Message{heartbeat(1, 2, 0)})
	waitFor(b, "connection", func() bool { return recv.received.Load() == 1 })
	recv.received.Store(0)

	entries := []raft.Entry{{Term: 1, Index: 1, Data: make([]byte, size)}}
	msgs := make([]raft.Message, batch)
	for i := range msgs {
		msgs[i] = raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 1, LogTerm: 1, Index: 0, Commit: 0, Entries: entries}
	}
	wait := func(cond func() bool) {
		for !cond() {
			select {
			case <-recv.notify:
			case <-time.After(time.Second):
			}
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		wait(func() bool { return int64(sent)-recv.received.Load() <= window-batch })
		n := min(batch, b.N-sent)
		a.Send(msgs[:n])
		sent += n
	}
	wait(func() bool { return recv.received.Load() == int64(b.N) })
	elapsed := time.Since(start)
	b.StopTimer()
	st := a.Stats()
	if st.MessagesDropped != 0 {
		b.Fatalf("got %d messages dropped, want 0", st.MessagesDropped)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(st.MessagesSent)/float64(st.FramesSent), "msgs/frame")
}
