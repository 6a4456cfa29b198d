package transport

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/leaktest"
	"github.com/lockstep/lockstep/internal/testcert"
	"github.com/lockstep/lockstep/raft"
)

// Three nodes each send a stream of appends to the two others; every
// message arrives, per-sender order is kept, and under this load the
// writers batch (fewer frames than messages).
func TestThreeNodesExchangeManyMessagesInOrder(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	const perPeer = 3000
	nodes := newCluster(t, 3, func(c *Config) { c.QueueLen = 2 * perPeer })
	startAll(t, nodes)
	// Connect first, so that the batching seen below comes from load, not
	// from messages piling up before the connections exist.
	for _, from := range nodes {
		for _, to := range nodes {
			if to.id != from.id {
				from.tr.Send([]raft.Message{heartbeat(from.id, to.id, 0)})
			}
		}
	}
	for _, nd := range nodes {
		waitFor(t, "connections", func() bool { return nd.rec.count(isType(raft.MsgHeartbeat)) == 2 })
	}
	payload := []byte("0123456789abcdef")

	var wg sync.WaitGroup
	for _, from := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= perPeer; i += 100 {
				batch := make([]raft.Message, 0, 200)
				for j := i; j < i+100; j++ {
					for _, to := range nodes {
						if to.id != from.id {
							batch = append(batch, appendMsg(from.id, to.id, j, payload))
						}
					}
				}
				from.tr.Send(batch)
			}
		}()
	}
	wg.Wait()
	for _, nd := range nodes {
		waitFor(t, "all appends to arrive", func() bool { return nd.rec.count(isType(raft.MsgApp)) == 2*perPeer })
	}
	for _, nd := range nodes {
		next := map[raft.NodeID]raft.Index{}
		for _, m := range nd.rec.messages() {
			if m.Type == raft.MsgHeartbeat {
				continue
			}
			if m.To != nd.id {
				t.Fatalf("node %d got a message to node %d", nd.id, m.To)
			}
			want := next[m.From] + 1
			if got := m.Entries[0].Index; got != want || !bytes.Equal(m.Entries[0].Data, payload) {
				t.Fatalf("node %d: from node %d got entry %d %q, want %d %q", nd.id, m.From, got, m.Entries[0].Data, want, payload)
			}
			next[m.From] = want
		}
		st := nd.tr.Stats()
		if st.MessagesDropped != 0 {
			t.Errorf("node %d dropped %d messages, want 0", nd.id, st.MessagesDropped)
		}
		if st.FramesSent >= st.MessagesSent {
			t.Errorf("node %d sent %d messages in %d frames, want batching (fewer frames)", nd.id, st.MessagesSent, st.FramesSent)
		}
		t.Logf("node %d: %d messages in %d frames (%.1f per frame), largest delivered batch %d",
			nd.id, st.MessagesSent, st.FramesSent, float64(st.MessagesSent)/float64(st.FramesSent), nd.rec.maxBatch)
	}
}

// Messages queued before the connection exists leave in one frame, and
// reach the handler in one call.
func TestMessagesQueuedBeforeConnectingLeaveInOneFrame(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	var batch []raft.Message
	for i := range uint64(50) {
		batch = append(batch, heartbeat(1, 2, i))
	}
	a.tr.Send(batch)
	startAll(t, nodes)
	waitFor(t, "heartbeats", func() bool { return b.rec.count(isType(raft.MsgHeartbeat)) == 50 })
	if st := a.tr.Stats(); st.FramesSent != 1 || st.MessagesSent != 50 {
		t.Errorf("got %d messages in %d frames, want 50 in 1", st.MessagesSent, st.FramesSent)
	}
	if b.rec.maxBatch != 50 {
		t.Errorf("got largest delivered batch %d, want 50", b.rec.maxBatch)
	}
}

// With the peer's handshake stalled (its accept loop not started), the
// queue fills; further messages are dropped and the peer is reported
// unreachable, and Send never blocks.
func TestQueueOverflowReportsThePeerUnreachable(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, func(c *Config) { c.QueueLen = 4 })
	a := nodes[0]
	if err := a.tr.Start(); err != nil {
		t.Fatal(err)
	}
	var batch []raft.Message
	for i := range uint64(100) {
		batch = append(batch, heartbeat(1, 2, i))
	}
	a.tr.Send(batch)
	waitFor(t, "node 2 reported unreachable", func() bool { return a.rec.unreachableCount(2) > 0 })
	if st := a.tr.Stats(); st.MessagesDropped < 100-4-1 {
		t.Errorf("got %d messages dropped, want at least %d", st.MessagesDropped, 100-4-1)
	}
}

func TestSendToAnUnknownPeerReportsItUnreachable(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 1, nil)
	startAll(t, nodes)
	nodes[0].tr.Send([]raft.Message{heartbeat(1, 9, 1)})
	waitFor(t, "node 9 reported unreachable", func() bool { return nodes[0].rec.unreachableCount(9) > 0 })
}

// A peer that restarts on the same address is redialed; messages flow
// again, and the outage was reported.
func TestPeerRestartReconnects(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	startAll(t, nodes)
	a.tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, "first heartbeat", func() bool { return b.rec.count(isType(raft.MsgHeartbeat)) == 1 })

	addr := b.tr.Addr().String()
	if err := b.tr.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 2 reported unreachable", func() bool {
		a.tr.Send([]raft.Message{heartbeat(1, 2, 2)})
		return a.rec.unreachableCount(2) > 0
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("relisten on %s: %v", addr, err)
	}
	rec := newRecorder()
	b2, err := New(Config{ClusterID: testClusterID, NodeID: 2, Listener: ln, Peers: map[raft.NodeID]string{1: a.tr.Addr().String()}}, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a heartbeat at the restarted node", func() bool {
		a.tr.Send([]raft.Message{heartbeat(1, 2, 3)})
		return rec.count(isType(raft.MsgHeartbeat)) > 0
	})
	if !strings.Contains(a.log.String(), "connected to peer") {
		t.Errorf("node 1 did not log the reconnect; log:\n%s", a.log)
	}
}

// gatedListener's connections stop delivering data once gateAfter bytes
// have been read, until open is closed: a stand-in for a slow link that
// holds a snapshot mid-stream.
type gatedListener struct {
	net.Listener
	gateAfter int64
	open      chan struct{}
	reached   chan struct{} // closed when a connection first waits at the gate
	once      sync.Once
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, l: l, closed: make(chan struct{})}, nil
}

type gatedConn struct {
	net.Conn
	l         *gatedListener
	read      int64
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *gatedConn) Read(b []byte) (int, error) {
	if c.read >= c.l.gateAfter {
		c.l.once.Do(func() { close(c.l.reached) })
		select {
		case <-c.l.open:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n, err := c.Conn.Read(b)
	c.read += int64(n)
	return n, err
}

func (c *gatedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func snapshotMsg(from, to raft.NodeID, data []byte) raft.Message {
	return raft.Message{Type: raft.MsgSnap, From: from, To: to, Term: 2, Snapshot: &raft.Snapshot{
		Meta: raft.SnapshotMeta{Index: 100, Term: 2, ConfState: raft.ConfState{Voters: []raft.NodeID{1, 2, 3}}},
		Data: data,
	}}
}

// A snapshot of several chunks is held mid-stream; heartbeats sent
// meanwhile are delivered, which they could not be if they shared its
// connection. Then the snapshot completes, arrives whole, and the sender
// reports success.
func TestLargeSnapshotStreamsWhileHeartbeatsFlow(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	gl := &gatedListener{Listener: listen(t), gateAfter: 2*snapshotChunkBytes + 100, open: make(chan struct{}), reached: make(chan struct{})}
	lnA := listen(t)
	peers := map[raft.NodeID]string{1: lnA.Addr().String(), 2: gl.Addr().String()}
	recA, recB := newRecorder(), newRecorder()
	a, err := New(Config{ClusterID: testClusterID, NodeID: 1, Listener: lnA, Peers: peers}, recA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Config{ClusterID: testClusterID, NodeID: 2, Listener: gl, Peers: peers}, recB)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	startAll(t, []*node{{tr: a}, {tr: b}})

	data := make([]byte, 5*snapshotChunkBytes+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	a.Send([]raft.Message{snapshotMsg(1, 2, data)})
	select {
	case <-gl.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the snapshot stream to reach the gate")
	}
	for i := range uint64(20) {
		a.Send([]raft.Message{heartbeat(1, 2, i)})
		waitFor(t, "a heartbeat during the snapshot", func() bool { return recB.count(isType(raft.MsgHeartbeat)) == int(i)+1 })
	}
	if n := recB.count(isType(raft.MsgSnap)); n != 0 {
		t.Fatalf("got %d snapshots delivered while the stream is held, want 0", n)
	}
	close(gl.open)
	waitFor(t, "the snapshot", func() bool { return recB.count(isType(raft.MsgSnap)) == 1 })
	waitFor(t, "the snapshot report", func() bool { return len(recA.snapshotReports(2)) == 1 })
	if got := recA.snapshotReports(2); !got[0] {
		t.Errorf("got snapshot reports %v, want [true]", got)
	}
	var snap *raft.Snapshot
	for _, m := range recB.messages() {
		if m.Type == raft.MsgSnap {
			snap = m.Snapshot
		}
	}
	if snap.Meta.Index != 100 || len(snap.Meta.ConfState.Voters) != 3 || !bytes.Equal(snap.Data, data) {
		t.Errorf("got snapshot index %d, voters %v, %d bytes of data (equal: %v), want index 100, 3 voters, the %d bytes sent",
			snap.Meta.Index, snap.Meta.ConfState.Voters, len(snap.Data), bytes.Equal(snap.Data, data), len(data))
	}
}

// A snapshot over the receiver's MaxSnapshotBytes is refused before its
// data is sent; both sides log it and the sender reports failure.
func TestOversizedSnapshotIsRefused(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, func(c *Config) { c.MaxSnapshotBytes = 1 << 20 })
	a, b := nodes[0], nodes[1]
	startAll(t, nodes)
	a.tr.Send([]raft.Message{snapshotMsg(1, 2, make([]byte, 2<<20))})
	waitFor(t, "the snapshot report", func() bool { return len(a.rec.snapshotReports(2)) == 1 })
	if got := a.rec.snapshotReports(2); got[0] {
		t.Errorf("got snapshot reports %v, want [false]", got)
	}
	if n := b.rec.count(isType(raft.MsgSnap)); n != 0 {
		t.Errorf("got %d snapshots delivered, want 0", n)
	}
	const reason = "snapshot of 2097152 bytes from node 1 exceeds MaxSnapshotBytes 1048576"
	if !strings.Contains(a.log.String(), reason) || !strings.Contains(b.log.String(), reason) {
		t.Errorf("want %q logged by both nodes; sender:\n%s\nreceiver:\n%s", reason, a.log, b.log)
	}
}

// A node of another cluster is refused; the acceptor logs why, the dialer
// logs the refusal it was sent, and reports the peer unreachable.
func TestNodeOfAnotherClusterIsRefusedAndBothSidesLogIt(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, func(c *Config) {
		if c.NodeID == 1 {
			c.ClusterID = 0xbad
		}
	})
	a, b := nodes[0], nodes[1]
	startAll(t, nodes)
	a.tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, "node 2 reported unreachable", func() bool { return a.rec.unreachableCount(2) > 0 })
	const reason = "cluster ID 0xbad, this is cluster 0x10c0"
	waitFor(t, "both sides to log the refusal", func() bool {
		return strings.Contains(a.log.String(), "peer refused connection") && strings.Contains(a.log.String(), reason) &&
			strings.Contains(b.log.String(), "refused connection") && strings.Contains(b.log.String(), reason)
	})
	if n := b.rec.count(func(*raft.Message) bool { return true }); n != 0 {
		t.Errorf("got %d messages delivered from another cluster, want 0", n)
	}
}

// rawDial connects to tr and sends h, returning the connection and the
// reply.
func rawDial(t *testing.T, tr *Transport, h hello) (net.Conn, error) {
	t.Helper()
	conn, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	b := h.encode()
	if _, err := conn.Write(b[:]); err != nil {
		t.Fatal(err)
	}
	return conn, readReply(conn)
}

func TestHandshakeRefusals(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, nil)
	b := nodes[1]
	startAll(t, nodes[1:])
	tests := []struct {
		name   string
		hello  hello
		reason string // empty: accepted
	}{
		{"a known peer is accepted", newHello(kindMessages, testClusterID, 1, 2), ""},
		{"another cluster", newHello(kindMessages, 77, 1, 2), "cluster ID 0x4d, this is cluster 0x10c0"},
		{"an unknown node ID", newHello(kindMessages, testClusterID, 5, 2), "node 5 is not a known peer"},
		{"this node's own ID", newHello(kindMessages, testClusterID, 2, 2), "sender claims this node's own ID 2"},
		{"meant for another node", newHello(kindMessages, testClusterID, 1, 3), "addressed to node 3, this is node 2"},
		{"an unknown stream kind", newHello(9, testClusterID, 1, 2), "unknown stream kind 9"},
		{"another protocol version", func() hello { h := newHello(kindMessages, testClusterID, 1, 2); h.version = 2; return h }(), "unsupported protocol version 2, want 1"},
		{"not this protocol", hello{magic: [4]byte{'G', 'E', 'T', ' '}}, `bad magic "GET ": not a lockstep transport connection`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rawDial(t, b.tr, tt.hello)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				return
			}
			want := "transport: refused by peer: " + tt.reason
			if err == nil || err.Error() != want {
				t.Fatalf("got %v, want %q", err, want)
			}
			// The text handler quotes values with spaces.
			if !strings.Contains(b.log.String(), strconv.Quote(tt.reason)) {
				t.Errorf("acceptor did not log %q", tt.reason)
			}
		})
	}
}

// An accepted peer that announces a frame over MaxFrameBytes is
// disconnected, with the peer and the size in the log.
func TestOversizedFrameDisconnectsThePeer(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, nil)
	b := nodes[1]
	startAll(t, nodes[1:])
	conn, err := rawDial(t, b.tr, newHello(kindMessages, testClusterID, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(binary.LittleEndian.AppendUint32(nil, 0xFFFFFFF0))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("got %v reading after the oversized frame, want EOF", err)
	}
	const want = "transport: frame of 4294967280 bytes from node 1 exceeds MaxFrameBytes 16777216"
	waitFor(t, "the log line", func() bool { return strings.Contains(b.log.String(), want) })
}

// A frame holding a message for another node, or from another node than
// the handshake said, ends the connection undelivered.
func TestMisaddressedMessageEndsTheConnection(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 3, nil)
	b := nodes[1]
	startAll(t, nodes[1:2])
	for _, m := range []raft.Message{heartbeat(1, 3, 1), heartbeat(3, 2, 1)} {
		conn, err := rawDial(t, b.tr, newHello(kindMessages, testClusterID, 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(encodeFrame([]raft.Message{heartbeat(1, 2, 1), m}))
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("got %v, want EOF", err)
		}
	}
	if n := b.rec.count(func(*raft.Message) bool { return true }); n != 0 {
		t.Errorf("got %d messages delivered, want 0", n)
	}
	waitFor(t, "the log line", func() bool {
		return strings.Contains(b.log.String(), "MsgHeartbeat from node 1 to node 3 on the stream from node 1 to node 2")
	})
}

func TestAddAndRemovePeerAtRuntime(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	a.tr.RemovePeer(2)
	b.tr.RemovePeer(1)
	startAll(t, nodes)

	a.tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, "unknown node 2 reported unreachable", func() bool { return a.rec.unreachableCount(2) > 0 })

	if err := a.tr.AddPeer(2, b.tr.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := b.tr.AddPeer(1, a.tr.Addr().String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a heartbeat after AddPeer", func() bool {
		a.tr.Send([]raft.Message{heartbeat(1, 2, 2)})
		return b.rec.count(isType(raft.MsgHeartbeat)) > 0
	})

	b.tr.RemovePeer(1)
	before := a.rec.unreachableCount(2)
	waitFor(t, "node 1 to find itself refused", func() bool {
		a.tr.Send([]raft.Message{heartbeat(1, 2, 3)})
		return a.rec.unreachableCount(2) > before && strings.Contains(a.log.String(), "node 1 is not a known peer")
	})
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ClusterID: 1, NodeID: 1, ListenAddr: "127.0.0.1:0"}
	tests := []struct {
		name string
		edit func(*Config)
		want string // empty: valid
	}{
		{"zero values are valid", func(*Config) {}, ""},
		{"zero cluster", func(c *Config) { c.ClusterID = 0 }, "transport: config: ClusterID must not be zero"},
		{"zero node", func(c *Config) { c.NodeID = 0 }, "transport: config: NodeID must not be zero"},
		{"no address", func(c *Config) { c.ListenAddr = "" }, "transport: config: one of Listener and ListenAddr is required"},
		{"peer without address", func(c *Config) { c.Peers = map[raft.NodeID]string{2: ""} }, "transport: config: peer 2 has no address"},
		{"self in peers", func(c *Config) { c.Peers = map[raft.NodeID]string{1: "x:1", 2: "y:2"} }, ""},
		{"tiny frames", func(c *Config) { c.MaxFrameBytes = 10 }, "transport: config: MaxFrameBytes 10 is outside [1024, 1073741824]"},
		{"negative queue", func(c *Config) { c.QueueLen = -1 }, "transport: config: QueueLen -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if got := errString(err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Close stops every goroutine, including those blocked in a handshake
// with a peer that never answers, and is idempotent.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	silent := listen(t) // accepts at the TCP level, never answers
	defer silent.Close()
	nodes := newCluster(t, 3, func(c *Config) { c.Peers[9] = silent.Addr().String() })
	startAll(t, nodes)
	for _, nd := range nodes {
		for _, other := range nodes {
			if other.id != nd.id {
				nd.tr.Send([]raft.Message{heartbeat(nd.id, other.id, 1), snapshotMsg(nd.id, other.id, []byte("s"))})
			}
		}
		nd.tr.Send([]raft.Message{heartbeat(nd.id, 9, 1)})
	}
	for _, nd := range nodes {
		waitFor(t, "heartbeats", func() bool { return nd.rec.count(isType(raft.MsgHeartbeat)) == 2 })
	}
	for _, nd := range nodes {
		if err := nd.tr.Close(); err != nil {
			t.Errorf("close node %d: %v", nd.id, err)
		}
		if err := nd.tr.Close(); err != nil {
			t.Errorf("second close of node %d: %v", nd.id, err)
		}
		if err := nd.tr.Start(); err == nil {
			t.Errorf("start after close of node %d succeeded, want an error", nd.id)
		}
	}
}

// Mutual TLS, with one certificate authority-less self-signed certificate
// trusted by both sides; a dialer without a client certificate is refused
// by TLS itself.
func TestMutualTLS(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	cert, pool := testcert.New(t)
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   "lockstep-test",
		MinVersion:   tls.VersionTLS13,
	}
	nodes := newCluster(t, 2, func(c *Config) { c.TLS = tlsCfg })
	a, b := nodes[0], nodes[1]
	startAll(t, nodes)
	a.tr.Send([]raft.Message{heartbeat(1, 2, 1), snapshotMsg(1, 2, make([]byte, 3*snapshotChunkBytes))})
	b.tr.Send([]raft.Message{heartbeat(2, 1, 1)})
	waitFor(t, "messages over TLS", func() bool {
		return b.rec.count(isType(raft.MsgHeartbeat)) == 1 && b.rec.count(isType(raft.MsgSnap)) == 1 && a.rec.count(isType(raft.MsgHeartbeat)) == 1
	})

	// A plain TCP client is not let in.
	conn, err := net.Dial("tcp", b.tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := newHello(kindMessages, testClusterID, 1, 2)
	enc := h.encode()
	conn.Write(enc[:])
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := readReply(conn); err == nil {
		t.Error("plaintext handshake accepted by a TLS transport")
	}
}

// With small frames, a burst is split across frames at message
// boundaries; nothing is lost or reordered. A message that could never fit
// a frame is dropped and reported, and the connection stays usable.
func TestFramesSplitAtTheLimitAndOversizedMessagesAreDropped(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, func(c *Config) { c.MaxFrameBytes = minFrameBytes })
	a, b := nodes[0], nodes[1]
	var burst []raft.Message
	for i := uint64(1); i <= 100; i++ {
		burst = append(burst, appendMsg(1, 2, i, make([]byte, 200)))
	}
	a.tr.Send(burst)
	startAll(t, nodes)
	waitFor(t, "the burst", func() bool { return b.rec.count(isType(raft.MsgApp)) == 100 })
	for i, m := range b.rec.messages() {
		if got, want := m.Entries[0].Index, raft.Index(i+1); got != want {
			t.Fatalf("message %d carries entry %d, want %d", i, got, want)
		}
	}
	if st := a.tr.Stats(); st.FramesSent < 20 || st.MessagesSent != 100 {
		t.Errorf("got %d messages in %d frames, want 100 in at least 20 (frames of at most %d bytes)", st.MessagesSent, st.FramesSent, minFrameBytes)
	}

	a.tr.Send([]raft.Message{appendMsg(1, 2, 101, make([]byte, 2*minFrameBytes)), heartbeat(1, 2, 1)})
	waitFor(t, "the heartbeat after the oversized message", func() bool { return b.rec.count(isType(raft.MsgHeartbeat)) == 1 })
	waitFor(t, "node 2 reported unreachable", func() bool { return a.rec.unreachableCount(2) > 0 })
	if n := b.rec.count(isType(raft.MsgApp)); n != 100 {
		t.Errorf("got %d appends, want 100 (the oversized one dropped)", n)
	}
	if !strings.Contains(a.log.String(), "message larger than MaxFrameBytes dropped") {
		t.Errorf("sender did not log the dropped message; log:\n%s", a.log)
	}
}

// A snapshot whose receiver goes away mid-stream is reported failed.
func TestSnapshotCutOffMidStreamIsReportedFailed(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	gl := &gatedListener{Listener: listen(t), gateAfter: snapshotChunkBytes, open: make(chan struct{}), reached: make(chan struct{})}
	lnA := listen(t)
	peers := map[raft.NodeID]string{1: lnA.Addr().String(), 2: gl.Addr().String()}
	recA := newRecorder()
	a, err := New(Config{ClusterID: testClusterID, NodeID: 1, Listener: lnA, Peers: peers}, recA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Config{ClusterID: testClusterID, NodeID: 2, Listener: gl, Peers: peers}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	startAll(t, []*node{{tr: a}, {tr: b}})
	a.Send([]raft.Message{snapshotMsg(1, 2, make([]byte, 8*snapshotChunkBytes))})
	select {
	case <-gl.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the snapshot stream to reach the gate")
	}
	b.Close()
	waitFor(t, "the snapshot report", func() bool { return len(recA.snapshotReports(2)) == 1 })
	if got := recA.snapshotReports(2); got[0] {
		t.Errorf("got snapshot reports %v, want [false]", got)
	}
}

func TestBackoffGrowsThenStaysCappedAndJittered(t *testing.T) {
	p := &peer{rng: newPeerRand(1, 2)}
	for _, tt := range []struct {
		failures int
		want     time.Duration // before jitter: the result is in [want/2, want]
	}{
		{1, minBackoff}, {2, 2 * minBackoff}, {3, 4 * minBackoff}, {7, 64 * minBackoff},
		{8, maxBackoff}, {20, maxBackoff}, {1000, maxBackoff},
	} {
		for range 100 {
			if got := p.backoff(tt.failures); got < tt.want/2 || got > tt.want {
				t.Fatalf("backoff after %d failures: got %v, want within [%v, %v]", tt.failures, got, tt.want/2, tt.want)
			}
		}
	}
}

// Sends, snapshots, peer removal and re-addition, and Close all race with
// each other; the race detector and leaktest watch. Once the churn stops,
// messages flow again.
func TestConcurrentSendChurnAndClose(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 3, func(c *Config) { c.QueueLen = 64 })
	startAll(t, nodes)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, from := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				for _, to := range nodes {
					if to.id == from.id {
						continue
					}
					msgs := []raft.Message{heartbeat(from.id, to.id, i), appendMsg(from.id, to.id, i+1, []byte("x"))}
					if i%50 == 0 {
						msgs = append(msgs, snapshotMsg(from.id, to.id, make([]byte, 1000)))
					}
					from.tr.Send(msgs)
				}
				if i%8 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	addr2 := nodes[1].tr.Addr().String()
	for range 20 {
		nodes[0].tr.RemovePeer(2)
		time.Sleep(2 * time.Millisecond)
		if err := nodes[0].tr.AddPeer(2, addr2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	before := nodes[1].rec.count(func(m *raft.Message) bool { return m.From == 1 })
	waitFor(t, "messages from node 1 after the churn", func() bool {
		return nodes[1].rec.count(func(m *raft.Message) bool { return m.From == 1 }) > before+10
	})
	// Close while the senders are still sending.
	for _, nd := range nodes {
		if err := nd.tr.Close(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

// Connections that never say hello are bounded; past the bound new ones
// are closed at once, and once the silent ones go, peers get in again.
func TestSilentConnectionsAreBounded(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	nodes := newCluster(t, 2, nil)
	b := nodes[1]
	startAll(t, nodes[1:])
	unidentified := func() int {
		b.tr.mu.RLock()
		defer b.tr.mu.RUnlock()
		n := 0
		for _, in := range b.tr.inbound {
			if in.from == raft.None {
				n++
			}
		}
		return n
	}
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range maxUnidentifiedConns {
		c, err := net.Dial("tcp", b.tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	waitFor(t, "the silent connections to be accepted", func() bool { return unidentified() == maxUnidentifiedConns })
	extra, err := net.Dial("tcp", b.tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("got %v reading from a connection past the limit, want EOF", err)
	}
	for _, c := range silent {
		c.Close()
	}
	silent = nil
	waitFor(t, "the silent connections to be dropped", func() bool { return unidentified() == 0 })
	if _, err := rawDial(t, b.tr, newHello(kindMessages, testClusterID, 1, 2)); err != nil {
		t.Errorf("got %v, want a known peer accepted", err)
	}
}
