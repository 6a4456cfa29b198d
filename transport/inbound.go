package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lockstep/lockstep/raft"
)

// acceptLoop accepts connections until the listener is closed, and starts a
// goroutine per connection. Connections that have not completed the
// handshake are bounded in time by handshakeTimeout.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	pause := time.Duration(0)
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, then retry,
			// rather than spin or give up on every peer.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			t.log.Error("transport: accept failed", "err", err, "retry_in", pause)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		closed, busy := t.track(conn)
		if closed {
			conn.Close()
			return
		}
		if busy {
			t.log.Warn("transport: too many connections waiting for their handshake; closing a new one", "remote", conn.RemoteAddr().String(), "limit", maxUnidentifiedConns)
			conn.Close()
			continue
		}
		go t.serveConn(conn)
	}
}

// track registers an accepted connection, so that Close and RemovePeer can
// close it, and counts its goroutine. It reports closed once Close has
// begun, and busy when maxUnidentifiedConns connections are already waiting
// for their handshake (identified ones are bounded by admit: two per peer).
func (t *Transport) track(conn net.Conn) (closed, busy bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return true, false
	}
	unidentified := 0
	for _, in := range t.inbound {
		if in.from == raft.None {
			unidentified++
		}
	}
	if unidentified >= maxUnidentifiedConns {
		return false, true
	}
	t.inbound[conn] = inboundConn{}
	t.wg.Add(1)
	return false, false
}

func (t *Transport) untrack(conn net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.inbound, conn)
}

// admit records who is on conn once its hello is checked. A new message
// stream from a peer replaces the previous one (the peer restarted, or the
// old connection is half-open); only one snapshot stream per peer is
// received at a time, since each may hold MaxSnapshotBytes in memory.
func (t *Transport) admit(conn net.Conn, h hello) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peers[h.from] == nil {
		// Removed since checkHello looked.
		return fmt.Errorf("node %d is not a known peer", h.from)
	}
	for c, in := range t.inbound {
		if c == conn || in.from != h.from || in.kind != h.kind {
			continue
		}
		if h.kind == kindSnapshot {
			return fmt.Errorf("a snapshot from node %d is already being received", h.from)
		}
		c.Close()
	}
	t.inbound[conn] = inboundConn{from: h.from, kind: h.kind}
	return nil
}

// serveConn runs the handshake on an accepted connection, then reads what
// it carries until it fails or the transport closes.
func (t *Transport) serveConn(conn net.Conn) {
	defer t.wg.Done()
	defer t.untrack(conn)
	defer conn.Close()

	remote := conn.RemoteAddr().String()
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return
	}
	h, err := readHello(conn)
	if err != nil {
		t.log.Debug("transport: no handshake on accepted connection", "remote", remote, "err", err)
		return
	}
	reason := checkHello(h, t.cfg.ClusterID, t.cfg.NodeID, t.knownPeer)
	if reason == nil {
		reason = t.admit(conn, h)
	}
	if reason != nil {
		t.log.Warn("transport: refused connection", "remote", remote, "from", uint64(h.from), "kind", h.kind.String(), "reason", reason.Error())
		writeReply(conn, reason)
		return
	}
	if err := writeReply(conn, nil); err != nil {
		return
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return
	}
	switch h.kind {
	case kindMessages:
		err = t.readMessages(conn, h.from)
	case kindSnapshot:
		err = t.receiveSnapshot(conn, h.from)
	}
	if err != nil && t.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		t.log.Warn("transport: inbound stream ended", "from", uint64(h.from), "kind", h.kind.String(), "remote", remote, "err", err)
	}
}

// readMessages reads frames from a peer's message stream and hands them to
// the handler, until the connection fails. io.EOF (the peer closed between
// two frames) is a clean end.
func (t *Transport) readMessages(conn net.Conn, from raft.NodeID) error {
	var buf []byte
	for {
		body, err := readFrame(conn, buf, t.cfg.MaxFrameBytes, from)
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		msgs, err := decodeFrame(body)
		if err != nil {
			return fmt.Errorf("transport: frame from node %d: %w", from, err)
		}
		for i := range msgs {
			if err := t.checkAddress(&msgs[i], from); err != nil {
				return err
			}
		}
		t.stats.framesReceived.Add(1)
		t.stats.messagesReceived.Add(uint64(len(msgs)))
		t.handler.HandleMessages(msgs)
		if cap(body) <= keepReadBuffer {
			buf = body
		} else {
			buf = nil
		}
	}
}

// checkAddress refuses a message that is not from the connection's peer to
// this node: the sender is confused, and acting on it could corrupt raft's
// view of who said what.
func (t *Transport) checkAddress(m *raft.Message, from raft.NodeID) error {
	if m.From != from || m.To != t.cfg.NodeID {
		return fmt.Errorf("transport: %s from node %d to node %d on the stream from node %d to node %d", m.Type, m.From, m.To, from, t.cfg.NodeID)
	}
	return nil
}
