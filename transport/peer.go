package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/lockstep/lockstep/raft"
)

// peer is the sending side towards one node: a queue, a writer goroutine
// that owns the message connection, and a snapshot goroutine that owns the
// snapshot connections.
type peer struct {
	t    *Transport
	id   raft.NodeID
	addr string // immutable: AddPeer with a new address makes a new peer

	// queue holds messages for the writer; Send never blocks on it.
	queue chan raft.Message
	// snapc holds at most one MsgSnap waiting for the snapshot goroutine.
	snapc chan raft.Message

	// ctx is canceled by RemovePeer, AddPeer (replacing), or Close.
	ctx    context.Context
	cancel context.CancelFunc

	// rng jitters the backoff. Owned by the writer goroutine.
	rng *rand.Rand
}

// runMessages is the writer goroutine: connect, pump frames until the
// connection fails, back off, repeat, until ctx is canceled.
func (p *peer) runMessages() {
	defer p.t.wg.Done()
	var fb frameBuilder
	// failures counts consecutive dial failures and short-lived
	// connections: a peer that accepts and then drops us at once (say,
	// because another process claims our node ID) is redialed with backoff,
	// not in a tight loop.
	failures := 0
	lastErr := ""
	for {
		conn, release, err := p.dial(kindMessages)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			failures++
			p.logDialFailure(err, failures, &lastErr)
			p.discardQueued()
			p.t.report(p.id, eventUnreachable)
			if !p.sleep(p.backoff(failures)) {
				return
			}
			continue
		}
		if failures > 0 {
			p.t.log.Info("transport: connected to peer", "peer", uint64(p.id), "addr", p.addr, "failed_attempts", failures)
		}
		connected := time.Now()
		dead := watch(conn)
		err = p.pump(conn, dead, &fb)
		release()
		<-dead
		if p.ctx.Err() != nil {
			return
		}
		p.t.log.Warn("transport: connection to peer lost", "peer", uint64(p.id), "addr", p.addr, "err", err)
		p.t.report(p.id, eventUnreachable)
		if time.Since(connected) >= stableConnection {
			failures = 0
			continue
		}
		failures++
		if !p.sleep(p.backoff(failures)) {
			return
		}
	}
}

// logDialFailure logs a failure loudly when it differs from the previous
// one, quietly otherwise: a peer that is down for an hour is one warning,
// not thousands, but a change of cause (down, then refusing) is seen. A
// refusal is an error: it is a configuration problem.
func (p *peer) logDialFailure(err error, failures int, last *string) {
	repeated := failures > 1 && err.Error() == *last
	*last = err.Error()
	var refused *refusedError
	switch {
	case repeated:
		p.t.log.Debug("transport: cannot connect to peer", "peer", uint64(p.id), "addr", p.addr, "err", err, "failed_attempts", failures)
	case errors.As(err, &refused):
		p.t.log.Error("transport: peer refused connection", "peer", uint64(p.id), "addr", p.addr, "reason", refused.reason)
	default:
		p.t.log.Warn("transport: cannot connect to peer", "peer", uint64(p.id), "addr", p.addr, "err", err)
	}
}

// watch reads from conn, which the acceptor never writes to after its
// reply, and closes the returned channel when the read fails: the peer
// closed the connection (or sent garbage), or conn was closed locally.
// The writer learns of a dead connection without waiting for a write to
// fail. The goroutine is owned by the writer, which waits for the channel
// after closing conn.
func watch(conn net.Conn) chan struct{} {
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		var b [1]byte
		conn.Read(b[:])
	}()
	return dead
}

// pump writes frames to conn until ctx is canceled (nil) or the connection
// fails (the error). Each frame holds the messages that are queued when the
// writer wakes up, up to about batchBytes: under load, one write carries
// many messages; when idle, a message goes out alone, at once.
func (p *peer) pump(conn net.Conn, dead <-chan struct{}, fb *frameBuilder) error {
	limit := p.t.cfg.MaxFrameBytes
	target := min(limit, batchBytes)
	// carry was dequeued but did not fit in the previous frame. (A value
	// and a flag, not a pointer: taking the address of each dequeued
	// message would move every one of them to the heap.)
	var carry raft.Message
	hasCarry := false
	for {
		var m raft.Message
		if hasCarry {
			m, carry, hasCarry = carry, raft.Message{}, false
		} else {
			select {
			case <-p.ctx.Done():
				return nil
			case <-dead:
				return errors.New("transport: connection closed by peer")
			case m = <-p.queue:
			}
		}
		fb.reset()
		if !p.addFirst(fb, &m, limit) {
			continue
		}
	drain:
		for fb.bodyLen() < target {
			select {
			case next := <-p.queue:
				mark, msgs := len(fb.buf), fb.msgs
				fb.add(&next)
				if fb.bodyLen() > limit {
					fb.buf, fb.msgs = fb.buf[:mark], msgs
					carry, hasCarry = next, true
					break drain
				}
			default:
				break drain
			}
		}
		if err := conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout)); err != nil {
			return err
		}
		if _, err := conn.Write(fb.bytes()); err != nil {
			p.t.stats.messagesDropped.Add(uint64(fb.msgs))
			return err
		}
		p.t.stats.framesSent.Add(1)
		p.t.stats.messagesSent.Add(uint64(fb.msgs))
	}
}

// addFirst adds m to an empty frame. A message that alone exceeds limit
// can never be sent: it is dropped, logged, and reported.
func (p *peer) addFirst(fb *frameBuilder, m *raft.Message, limit int) bool {
	fb.add(m)
	if fb.bodyLen() <= limit {
		return true
	}
	p.t.log.Error("transport: message larger than MaxFrameBytes dropped", "peer", uint64(p.id), "type", m.Type.String(), "bytes", fb.bodyLen(), "max_frame_bytes", limit)
	p.t.stats.messagesDropped.Add(1)
	p.t.report(p.id, eventUnreachable)
	fb.reset()
	return false
}

// discardQueued drops what is queued while the peer cannot be reached: by
// the time a connection exists it would be stale, and raft resends.
func (p *peer) discardQueued() {
	for {
		select {
		case <-p.queue:
			p.t.stats.messagesDropped.Add(1)
		default:
			return
		}
	}
}

// backoff is the pause after the given number of consecutive failures:
// exponential from minBackoff, capped at maxBackoff, with the upper half
// jittered.
func (p *peer) backoff(failures int) time.Duration {
	d := maxBackoff
	if failures < 16 {
		d = min(minBackoff<<(failures-1), maxBackoff)
	}
	return d/2 + time.Duration(p.rng.Int64N(int64(d/2)+1))
}

// sleep waits for d or until ctx is canceled; it reports whether to go on.
func (p *peer) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// dial connects to the peer and performs the handshake for a stream of the
// given kind. The returned release closes the connection; until then, the
// connection is also closed if ctx is canceled, which unblocks any read or
// write on it.
func (p *peer) dial(kind streamKind) (net.Conn, func(), error) {
	cfg := &p.t.cfg
	nd := &net.Dialer{Timeout: cfg.DialTimeout}
	var conn net.Conn
	var err error
	if cfg.TLS != nil {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: cfg.TLS}).DialContext(p.ctx, "tcp", p.addr)
	} else {
		conn, err = nd.DialContext(p.ctx, "tcp", p.addr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("transport: dial node %d at %s: %w", p.id, p.addr, err)
	}
	// The AfterFunc runs on a goroutine of its own; release waits for it
	// if it has started, so that Close really waits for everything.
	closed := make(chan struct{})
	stop := context.AfterFunc(p.ctx, func() {
		defer close(closed)
		conn.Close()
	})
	release := func() {
		if !stop() {
			<-closed
		}
		conn.Close()
	}
	if err := p.handshake(conn, kind); err != nil {
		release()
		return nil, nil, err
	}
	return conn, release, nil
}

func (p *peer) handshake(conn net.Conn, kind streamKind) error {
	cfg := &p.t.cfg
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	h := newHello(kind, cfg.ClusterID, cfg.NodeID, p.id)
	b := h.encode()
	if _, err := conn.Write(b[:]); err != nil {
		return fmt.Errorf("transport: handshake with node %d at %s: %w", p.id, p.addr, err)
	}
	if err := readReply(conn); err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			return err
		}
		return fmt.Errorf("transport: handshake with node %d at %s: %w", p.id, p.addr, err)
	}
	return conn.SetDeadline(time.Time{})
}
