package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lockstep/lockstep/raft"
)

// Every connection starts with a hello from the dialer and a reply from the
// acceptor:
//
//	hello = magic:"LKST" version:u16le kind:u8 reserved:u8(0)
//	        cluster:u64le from:u64le to:u64le                  (32 bytes)
//	reply = status:u8 reasonLen:u8 reason:[reasonLen]byte      (0 = accepted)
//
// The acceptor checks the hello against its own configuration and, if it
// refuses, sends the reason before closing, so that both ends log why. The
// dialer sends nothing else until it has read an accepting reply.

const (
	helloBytes      = 32
	protocolVersion = 1
	maxReasonBytes  = 255
)

var helloMagic = [4]byte{'L', 'K', 'S', 'T'}

// streamKind says what a connection carries after the handshake.
type streamKind uint8

const (
	// kindMessages: frames of raft messages, for the connection's life.
	kindMessages streamKind = 1
	// kindSnapshot: one MsgSnap, its data in chunks, then the connection
	// closes (see snapshot.go).
	kindSnapshot streamKind = 2
)

func (k streamKind) String() string {
	switch k {
	case kindMessages:
		return "messages"
	case kindSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("streamKind(%d)", uint8(k))
}

// hello is the dialer's introduction.
type hello struct {
	magic     [4]byte
	version   uint16
	kind      streamKind
	reserved  uint8
	clusterID uint64
	from      raft.NodeID
	to        raft.NodeID
}

func (h *hello) encode() [helloBytes]byte {
	var b [helloBytes]byte
	copy(b[0:4], h.magic[:])
	binary.LittleEndian.PutUint16(b[4:], h.version)
	b[6] = byte(h.kind)
	b[7] = h.reserved
	binary.LittleEndian.PutUint64(b[8:], h.clusterID)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.from))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.to))
	return b
}

func decodeHello(b [helloBytes]byte) hello {
	var h hello
	copy(h.magic[:], b[0:4])
	h.version = binary.LittleEndian.Uint16(b[4:])
	h.kind = streamKind(b[6])
	h.reserved = b[7]
	h.clusterID = binary.LittleEndian.Uint64(b[8:])
	h.from = raft.NodeID(binary.LittleEndian.Uint64(b[16:]))
	h.to = raft.NodeID(binary.LittleEndian.Uint64(b[24:]))
	return h
}

// newHello is the hello a dialer sends.
func newHello(kind streamKind, clusterID uint64, from, to raft.NodeID) hello {
	return hello{magic: helloMagic, version: protocolVersion, kind: kind, clusterID: clusterID, from: from, to: to}
}

// checkHello decides whether an acceptor with the given identity takes the
// connection h introduces. The error's text is sent back to the dialer.
func checkHello(h hello, clusterID uint64, self raft.NodeID, known func(raft.NodeID) bool) error {
	switch {
	case h.magic != helloMagic:
		return fmt.Errorf("bad magic %q: not a lockstep transport connection", h.magic[:])
	case h.version != protocolVersion:
		return fmt.Errorf("unsupported protocol version %d, want %d", h.version, protocolVersion)
	case h.kind != kindMessages && h.kind != kindSnapshot:
		return fmt.Errorf("unknown stream kind %d", h.kind)
	case h.reserved != 0:
		return fmt.Errorf("reserved byte is %d, want 0", h.reserved)
	case h.clusterID != clusterID:
		return fmt.Errorf("cluster ID %#x, this is cluster %#x", h.clusterID, clusterID)
	case h.to != self:
		return fmt.Errorf("addressed to node %d, this is node %d", h.to, self)
	case h.from == self:
		return fmt.Errorf("sender claims this node's own ID %d", h.from)
	case !known(h.from):
		return fmt.Errorf("node %d is not a known peer", h.from)
	}
	return nil
}

// readHello reads a hello from r.
func readHello(r io.Reader) (hello, error) {
	var b [helloBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, err
	}
	return decodeHello(b), nil
}

// writeReply writes a reply: accepted if reason is nil, refused otherwise.
func writeReply(w io.Writer, reason error) error {
	if reason == nil {
		_, err := w.Write([]byte{0, 0})
		return err
	}
	// The reader prefixes the reason with its own package name.
	text := strings.TrimPrefix(reason.Error(), "transport: ")
	if len(text) > maxReasonBytes {
		text = text[:maxReasonBytes]
	}
	b := make([]byte, 0, 2+len(text))
	b = append(b, 1, byte(len(text)))
	b = append(b, text...)
	_, err := w.Write(b)
	return err
}

// refusedError is a refusal received from the other end.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "transport: refused by peer: " + e.reason }

// readReply reads a reply; a refusal comes back as a *refusedError.
func readReply(r io.Reader) error {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	switch hdr[0] {
	case 0:
		if hdr[1] != 0 {
			return errors.New("transport: malformed reply: accepted with a reason")
		}
		return nil
	case 1:
		reason := make([]byte, hdr[1])
		if _, err := io.ReadFull(r, reason); err != nil {
			return err
		}
		return &refusedError{reason: string(reason)}
	}
	return fmt.Errorf("transport: malformed reply: status %d", hdr[0])
}
