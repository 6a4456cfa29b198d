package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"

	"github.com/lockstep/lockstep/raft"
)

// Handler receives what the transport delivers and reports.
//
// Concurrency contract: methods are called from the transport's goroutines
// (one reader per inbound connection, one reporter, one snapshot sender per
// peer), possibly at the same time, so they must be safe for concurrent
// use. They must not block for long: a HandleMessages that blocks stalls
// the connection it was called from (and, through TCP flow control, the
// sender), and a slow Report* delays other reports. They must not call
// Close, which waits for them. No method is called after Close returns.
type Handler interface {
	// HandleMessages delivers the messages of one frame, in the order the
	// peer sent them. The handler owns msgs and everything they point to.
	// A MsgSnap arrives alone, with its data complete.
	HandleMessages(msgs []raft.Message)
	// ReportUnreachable says that messages to id were dropped (queue full,
	// connection failed or refused); raft should slow down and retry.
	// Reports are coalesced: several drops may yield one call.
	ReportUnreachable(id raft.NodeID)
	// ReportSnapshot says whether the last MsgSnap sent to id was received
	// whole and handed to the peer's handler (raft's ReportSnapshot).
	ReportSnapshot(id raft.NodeID, ok bool)
}

// Stats are counters since New; see Transport.Stats.
type Stats struct {
	FramesSent        uint64
	MessagesSent      uint64 // in frames written, snapshots excluded
	MessagesDropped   uint64 // queue full, peer unknown or down, too large
	FramesReceived    uint64
	MessagesReceived  uint64 // in frames read, snapshots excluded
	SnapshotsSent     uint64 // acknowledged by the receiver
	SnapshotsReceived uint64
}

type counters struct {
	framesSent, messagesSent, messagesDropped atomic.Uint64
	framesReceived, messagesReceived          atomic.Uint64
	snapshotsSent, snapshotsReceived          atomic.Uint64
}

// Report events, coalesced per peer until the reporter goroutine runs.
const (
	eventUnreachable uint8 = 1 << iota
	eventSnapshotFailed
)

// Transport sends raft messages to peers and receives theirs.
//
// Concurrency: every method may be called from any goroutine. Send never
// blocks on the network.
type Transport struct {
	cfg     Config // defaults applied
	handler Handler
	log     *slog.Logger
	ln      net.Listener

	// ctx is canceled by Close; every goroutine watches it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the transport started (peers' included);
	// Close waits for it.
	wg sync.WaitGroup

	// mu guards started, closed, peers and inbound.
	mu      sync.RWMutex
	started bool
	closed  bool
	peers   map[raft.NodeID]*peer
	inbound map[net.Conn]inboundConn

	// reportMu guards pending.
	reportMu sync.Mutex
	pending  map[raft.NodeID]uint8
	// reportc wakes the reporter; capacity 1, so signalling never blocks.
	reportc chan struct{}

	stats counters
}

// inboundConn is what the transport knows about an accepted connection.
type inboundConn struct {
	from raft.NodeID // None until the handshake is accepted
	kind streamKind
}

// New validates cfg and binds the listener; nothing runs until Start.
func New(cfg Config, h Handler) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("transport: nil handler")
	}
	cfg = cfg.withDefaults()
	ln := cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("transport: %w", err)
		}
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	t := &Transport{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger.With("node", uint64(cfg.NodeID)),
		ln:      ln,
		peers:   make(map[raft.NodeID]*peer),
		inbound: make(map[net.Conn]inboundConn),
		pending: make(map[raft.NodeID]uint8),
		reportc: make(chan struct{}, 1),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	for id, addr := range cfg.Peers {
		if id != cfg.NodeID {
			t.peers[id] = t.newPeer(id, addr)
		}
	}
	return t, nil
}

// Start starts accepting connections and connecting to peers. It fails if
// called twice or after Close.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("transport: start after close")
	}
	if t.started {
		return errors.New("transport: already started")
	}
	t.started = true
	t.wg.Add(2)
	go t.acceptLoop()
	go t.runReporter()
	for _, p := range t.peers {
		t.startPeerLocked(p)
	}
	return nil
}

// Addr is the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Send queues msgs for their destinations (m.To) and returns at once. A
// message that cannot be queued (destination unknown, queue full) is dropped
// and its destination reported unreachable, from another goroutine. MsgSnap
// goes to the peer's snapshot stream; if one is already queued there, the
// new one is dropped and reported as a failed snapshot.
//
// The transport reads the messages' slices (Entries, Context, Snapshot)
// until they are written, so the caller must not modify them after Send.
func (t *Transport) Send(msgs []raft.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return
	}
	for i := range msgs {
		m := &msgs[i]
		p := t.peers[m.To]
		if p == nil {
			t.stats.messagesDropped.Add(1)
			t.log.Debug("transport: message to unknown peer dropped", "to", uint64(m.To), "type", m.Type.String())
			t.report(m.To, eventUnreachable)
			continue
		}
		if m.Type == raft.MsgSnap && m.Snapshot != nil {
			select {
			case p.snapc <- *m:
			default:
				t.stats.messagesDropped.Add(1)
				t.report(m.To, eventSnapshotFailed)
			}
			continue
		}
		select {
		case p.queue <- *m:
		default:
			t.stats.messagesDropped.Add(1)
			t.report(m.To, eventUnreachable)
		}
	}
}

// AddPeer lets node id connect and directs messages for id to addr. Adding
// a known peer with a new address replaces its connections.
func (t *Transport) AddPeer(id raft.NodeID, addr string) error {
	if id == raft.None || id == t.cfg.NodeID {
		return fmt.Errorf("transport: cannot add peer %d", id)
	}
	if addr == "" {
		return fmt.Errorf("transport: peer %d has no address", id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("transport: add peer after close")
	}
	if old := t.peers[id]; old != nil {
		if old.addr == addr {
			return nil
		}
		old.cancel()
	}
	p := t.newPeer(id, addr)
	t.peers[id] = p
	if t.started {
		t.startPeerLocked(p)
	}
	return nil
}

// RemovePeer forgets node id: queued messages to it are discarded, its
// connections in both directions are closed, and it may no longer connect.
// It does not wait for the peer's goroutines (Close does).
func (t *Transport) RemovePeer(id raft.NodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		p.cancel()
		delete(t.peers, id)
	}
	for c, in := range t.inbound {
		if in.from == id {
			c.Close()
		}
	}
}

// Close stops every goroutine the transport started, closes every
// connection and the listener, and waits for all of it. Messages still
// queued are dropped without being reported. Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	for c := range t.inbound {
		c.Close()
	}
	t.mu.Unlock()
	err := t.ln.Close()
	t.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: closing listener: %w", err)
	}
	return nil
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	s := &t.stats
	return Stats{
		FramesSent:        s.framesSent.Load(),
		MessagesSent:      s.messagesSent.Load(),
		MessagesDropped:   s.messagesDropped.Load(),
		FramesReceived:    s.framesReceived.Load(),
		MessagesReceived:  s.messagesReceived.Load(),
		SnapshotsSent:     s.snapshotsSent.Load(),
		SnapshotsReceived: s.snapshotsReceived.Load(),
	}
}

// knownPeer reports whether id may connect.
func (t *Transport) knownPeer(id raft.NodeID) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.peers[id] != nil
}

// newPeer makes a peer that is not running yet.
func (t *Transport) newPeer(id raft.NodeID, addr string) *peer {
	p := &peer{
		t:     t,
		id:    id,
		addr:  addr,
		queue: make(chan raft.Message, t.cfg.QueueLen),
		snapc: make(chan raft.Message, 1),
		rng:   newPeerRand(t.cfg.NodeID, id),
	}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	return p
}

// newPeerRand seeds a peer's backoff jitter with the pair of IDs: nodes
// redialing the same peer back off differently, and a run is reproducible.
func newPeerRand(self, peer raft.NodeID) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(self), uint64(peer)))
}

// startPeerLocked starts p's goroutines. t.mu must be held.
func (t *Transport) startPeerLocked(p *peer) {
	t.wg.Add(2)
	go p.runMessages()
	go p.runSnapshots()
}

// report records an event for id and wakes the reporter. It never blocks,
// so Send can call it.
func (t *Transport) report(id raft.NodeID, ev uint8) {
	t.reportMu.Lock()
	t.pending[id] |= ev
	t.reportMu.Unlock()
	select {
	case t.reportc <- struct{}{}:
	default:
	}
}

// runReporter delivers coalesced events to the handler, so that callers of
// Send are never called back on their own goroutine.
func (t *Transport) runReporter() {
	defer t.wg.Done()
	next := make(map[raft.NodeID]uint8)
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.reportc:
		}
		t.reportMu.Lock()
		events := t.pending
		t.pending = next
		t.reportMu.Unlock()
		for id, ev := range events {
			if t.ctx.Err() != nil {
				return
			}
			if ev&eventUnreachable != 0 {
				t.handler.ReportUnreachable(id)
			}
			if ev&eventSnapshotFailed != 0 {
				t.handler.ReportSnapshot(id, false)
			}
		}
		clear(events)
		next = events
	}
}
