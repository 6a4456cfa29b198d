package transport

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lockstep/lockstep/raft"
)

// A snapshot stream carries one MsgSnap after the handshake:
//
//	dialer:   msgLen:u32le message:[msgLen]byte dataLen:u64le
//	acceptor: reply                      (refuses e.g. dataLen > MaxSnapshotBytes)
//	dialer:   data:[dataLen]byte         (written in chunks of snapshotChunkBytes)
//	acceptor: reply                      (accepted: handed to the handler)
//
// message is raft.AppendMessage of the MsgSnap with Snapshot.Data empty.
// Each snapshot uses its own connection, so a large one never delays the
// message stream, and a failure mid-way needs no resynchronization.

// runSnapshots is the snapshot goroutine: it streams queued MsgSnaps one
// at a time and reports each outcome, until ctx is canceled.
func (p *peer) runSnapshots() {
	defer p.t.wg.Done()
	for {
		var m raft.Message
		select {
		case <-p.ctx.Done():
			return
		case m = <-p.snapc:
		}
		err := p.sendSnapshot(&m)
		if p.ctx.Err() != nil {
			// Closing or removed: nobody is waiting for the outcome.
			return
		}
		if err != nil {
			p.t.log.Warn("transport: sending snapshot failed", "peer", uint64(p.id), "index", uint64(m.Snapshot.Meta.Index), "bytes", len(m.Snapshot.Data), "err", err)
		} else {
			p.t.stats.snapshotsSent.Add(1)
		}
		p.t.handler.ReportSnapshot(p.id, err == nil)
	}
}

func (p *peer) sendSnapshot(m *raft.Message) error {
	conn, release, err := p.dial(kindSnapshot)
	if err != nil {
		return err
	}
	defer release()
	timeout := p.t.cfg.WriteTimeout

	head := *m
	meta := *m.Snapshot
	meta.Data = nil
	head.Snapshot = &meta
	b := make([]byte, 4, 64)
	b = raft.AppendMessage(b, &head)
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(m.Snapshot.Data)))
	if err := writeWithin(conn, b, timeout); err != nil {
		return fmt.Errorf("transport: snapshot header to node %d: %w", p.id, err)
	}
	if err := replyWithin(conn, handshakeTimeout); err != nil {
		return fmt.Errorf("transport: snapshot to node %d: %w", p.id, err)
	}
	for data := m.Snapshot.Data; len(data) > 0; {
		n := min(len(data), snapshotChunkBytes)
		if err := writeWithin(conn, data[:n], timeout); err != nil {
			return fmt.Errorf("transport: snapshot data to node %d: %w", p.id, err)
		}
		data = data[n:]
	}
	if err := replyWithin(conn, handshakeTimeout+timeout); err != nil {
		return fmt.Errorf("transport: snapshot to node %d: %w", p.id, err)
	}
	return nil
}

func writeWithin(conn net.Conn, b []byte, d time.Duration) error {
	if err := conn.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := conn.Write(b)
	return err
}

func replyWithin(conn net.Conn, d time.Duration) error {
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	return readReply(conn)
}

// deadlineReader sets a fresh read deadline before every read, so that a
// stream may be long as long as it keeps moving.
type deadlineReader struct {
	conn    net.Conn
	timeout time.Duration
}

func (r deadlineReader) Read(b []byte) (int, error) {
	if err := r.conn.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
		return 0, err
	}
	return r.conn.Read(b)
}

// receiveSnapshot reads one MsgSnap from a snapshot stream, delivers it and
// acknowledges it. Memory grows with the data that arrives, never past
// MaxSnapshotBytes.
func (t *Transport) receiveSnapshot(conn net.Conn, from raft.NodeID) error {
	r := deadlineReader{conn: conn, timeout: t.cfg.WriteTimeout}
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(lenBuf[:])
	if uint64(n)+8 > uint64(t.cfg.MaxFrameBytes) {
		return &frameTooLargeError{from: from, size: uint64(n) + 8, limit: t.cfg.MaxFrameBytes}
	}
	head, err := readGrowing(r, nil, int(n)+8, frameReadChunk)
	if err != nil {
		return err
	}
	size := binary.LittleEndian.Uint64(head[n:])
	m, err := raft.DecodeMessage(head[:n])
	if err != nil {
		return fmt.Errorf("transport: snapshot header from node %d: %w", from, err)
	}
	reason := t.checkAddress(&m, from)
	switch {
	case reason != nil:
	case m.Type != raft.MsgSnap || m.Snapshot == nil:
		reason = fmt.Errorf("transport: %s without snapshot on the snapshot stream from node %d", m.Type, from)
	case size > uint64(t.cfg.MaxSnapshotBytes):
		reason = fmt.Errorf("transport: snapshot of %d bytes from node %d exceeds MaxSnapshotBytes %d", size, from, t.cfg.MaxSnapshotBytes)
	}
	if reason != nil {
		writeReply(conn, reason)
		return reason
	}
	if err := writeReply(conn, nil); err != nil {
		return err
	}
	data, err := readGrowing(r, nil, int(size), snapshotChunkBytes)
	if err != nil {
		return fmt.Errorf("transport: snapshot data from node %d, %d of %d bytes: %w", from, len(data), size, err)
	}
	if size > 0 {
		m.Snapshot.Data = data
	}
	t.stats.snapshotsReceived.Add(1)
	t.handler.HandleMessages([]raft.Message{m})
	if err := conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
		return err
	}
	return writeReply(conn, nil)
}
