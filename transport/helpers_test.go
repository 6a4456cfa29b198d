package transport

import (
	"bytes"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lockstep/lockstep/raft"
)

const testClusterID = 0x10c0

// recorder is a Handler that remembers what it was given.
type recorder struct {
	mu          sync.Mutex
	msgs        []raft.Message
	calls       int // HandleMessages calls
	maxBatch    int
	unreachable map[raft.NodeID]int
	snapReports map[raft.NodeID][]bool
	// onMessages, if set, runs inside HandleMessages (without mu held).
	onMessages func([]raft.Message)
}

func newRecorder() *recorder {
	return &recorder{unreachable: make(map[raft.NodeID]int), snapReports: make(map[raft.NodeID][]bool)}
}

func (r *recorder) HandleMessages(msgs []raft.Message) {
	if r.onMessages != nil {
		r.onMessages(msgs)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
	r.calls++
	r.maxBatch = max(r.maxBatch, len(msgs))
}

func (r *recorder) ReportUnreachable(id raft.NodeID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id]++
}

func (r *recorder) ReportSnapshot(id raft.NodeID, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapReports[id] = append(r.snapReports[id], ok)
}

// count returns how many received messages satisfy keep.
func (r *recorder) count(keep func(*raft.Message) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := range r.msgs {
		if keep(&r.msgs[i]) {
			n++
		}
	}
	return n
}

func (r *recorder) messages() []raft.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raft.Message(nil), r.msgs...)
}

func (r *recorder) unreachableCount(id raft.NodeID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *recorder) snapshotReports(id raft.NodeID) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.snapReports[id]...)
}

func isType(t raft.MessageType) func(*raft.Message) bool {
	return func(m *raft.Message) bool { return m.Type == t }
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// listen binds a loopback listener on a free port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// node is one transport of a test cluster.
type node struct {
	id  raft.NodeID
	tr  *Transport
	rec *recorder
	log *logBuffer
}

// newCluster makes n transports with IDs 1..n that know each other, and
// closes them when the test ends. tweak, if not nil, edits each config.
// The transports are not started.
func newCluster(t testing.TB, n int, tweak func(*Config)) []*node {
	t.Helper()
	lns := make([]net.Listener, n)
	peers := make(map[raft.NodeID]string)
	for i := range lns {
		lns[i] = listen(t)
		peers[raft.NodeID(i+1)] = lns[i].Addr().String()
	}
	nodes := make([]*node, n)
	for i := range nodes {
		nd := &node{id: raft.NodeID(i + 1), rec: newRecorder(), log: &logBuffer{}}
		cfg := Config{
			ClusterID: testClusterID,
			NodeID:    nd.id,
			Listener:  lns[i],
			Peers:     peers,
			Logger:    nd.log.logger(),
		}
		if tweak != nil {
			tweak(&cfg)
		}
		tr, err := New(cfg, nd.rec)
		if err != nil {
			t.Fatal(err)
		}
		nd.tr = tr
		t.Cleanup(func() { tr.Close() })
		nodes[i] = nd
	}
	return nodes
}

func startAll(t testing.TB, nodes []*node) {
	t.Helper()
	for _, nd := range nodes {
		if err := nd.tr.Start(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline: the tests assert what happens, never how fast.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func heartbeat(from, to raft.NodeID, seq uint64) raft.Message {
	return raft.Message{Type: raft.MsgHeartbeat, From: from, To: to, Term: 1, Commit: raft.Index(seq)}
}

func appendMsg(from, to raft.NodeID, index uint64, data []byte) raft.Message {
	return raft.Message{Type: raft.MsgApp, From: from, To: to, Term: 1, Index: raft.Index(index - 1), LogTerm: 1,
		Entries: []raft.Entry{{Term: 1, Index: raft.Index(index), Data: data}}}
}
