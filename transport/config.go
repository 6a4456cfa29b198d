package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lockstep/lockstep/raft"
)

// Defaults used where a Config field is zero.
const (
	DefaultQueueLen         = 4096
	DefaultMaxFrameBytes    = 16 << 20
	DefaultMaxSnapshotBytes = 1 << 30
	DefaultDialTimeout      = 5 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
)

// Limits that are not configurable.
const (
	// snapshotChunkBytes is the size of one write of snapshot data: a stalled
	// receiver is detected within one write timeout of one chunk, and the
	// receiver's buffer grows by at most this much per read.
	snapshotChunkBytes = 1 << 20
	// handshakeTimeout bounds how long an accepted connection may take to
	// say who it is, and how long a dialer waits for the answer.
	handshakeTimeout = 10 * time.Second
	// maxUnidentifiedConns bounds accepted connections that have not
	// completed the handshake: whoever can reach the port cannot make the
	// transport hold more than this many sockets and goroutines.
	maxUnidentifiedConns = 64
	// minBackoff and maxBackoff bound the pause between two dials of a
	// peer that is down.
	minBackoff = 20 * time.Millisecond
	maxBackoff = 2 * time.Second
	// stableConnection is how long a connection must last for the next
	// one to be dialed at once rather than after a backoff.
	stableConnection = maxBackoff
	// minFrameBytes is the smallest MaxFrameBytes accepted: room for any
	// message without entries, with some context.
	minFrameBytes = 1 << 10
)

// Config configures a Transport. The zero value of every field except
// ClusterID, NodeID and the listen address means "use the default".
type Config struct {
	// ClusterID identifies the cluster. Both ends of a connection must
	// agree on it, so that a replica of another cluster, misconfigured with
	// this cluster's addresses, is refused. Must not be zero.
	ClusterID uint64
	// NodeID is this replica's ID. Must not be raft.None.
	NodeID raft.NodeID

	// Listener, if not nil, is where the transport accepts connections
	// from peers; the transport owns it and closes it in Close (if New
	// fails, the caller still owns it). Otherwise
	// the transport listens on ListenAddr (host:port; port 0 picks one,
	// see Transport.Addr). One of the two is required.
	Listener   net.Listener
	ListenAddr string

	// Peers maps the other replicas' IDs to their addresses (host:port).
	// Only these IDs, and those added with AddPeer, may connect. An entry
	// for NodeID itself is ignored, so a full membership map can be passed.
	Peers map[raft.NodeID]string

	// TLS, if not nil, protects every connection: the listener serves TLS
	// with it and dials use it as the client configuration. For mutual TLS
	// set Certificates, RootCAs, ClientCAs and ClientAuth as usual; the
	// same *tls.Config serves both roles.
	TLS *tls.Config

	// QueueLen is the number of messages that may wait for one peer's
	// connection; when it is full, further messages to that peer are
	// dropped and the peer is reported unreachable. Zero means
	// DefaultQueueLen.
	QueueLen int
	// MaxFrameBytes bounds one frame (a batch of messages) in both
	// directions, and hence the largest single message. A peer that
	// announces a larger frame is disconnected before anything is
	// allocated. Zero means DefaultMaxFrameBytes.
	MaxFrameBytes int
	// MaxSnapshotBytes bounds the data of one snapshot received. Zero
	// means DefaultMaxSnapshotBytes.
	MaxSnapshotBytes int64

	// DialTimeout bounds one connection attempt, TLS included. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// WriteTimeout bounds one write of a frame or of a snapshot chunk; a
	// peer that does not read for that long is disconnected. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration

	// Logger receives connection events: refusals, disconnects, dropped
	// messages. Nil discards them.
	Logger *slog.Logger
}

// Validate reports the first problem with c, or nil.
func (c *Config) Validate() error {
	if c.ClusterID == 0 {
		return errors.New("transport: config: ClusterID must not be zero")
	}
	if c.NodeID == raft.None {
		return errors.New("transport: config: NodeID must not be zero")
	}
	if c.Listener == nil && c.ListenAddr == "" {
		return errors.New("transport: config: one of Listener and ListenAddr is required")
	}
	if c.Listener != nil && c.ListenAddr != "" {
		return errors.New("transport: config: Listener and ListenAddr are exclusive")
	}
	for id, addr := range c.Peers {
		if id == raft.None {
			return fmt.Errorf("transport: config: peer ID zero (address %q)", addr)
		}
		if id != c.NodeID && addr == "" {
			return fmt.Errorf("transport: config: peer %d has no address", id)
		}
	}
	if c.QueueLen < 0 {
		return fmt.Errorf("transport: config: QueueLen %d is negative", c.QueueLen)
	}
	if c.MaxFrameBytes < 0 || (c.MaxFrameBytes > 0 && c.MaxFrameBytes < minFrameBytes) || c.MaxFrameBytes > maxFrameLimit {
		return fmt.Errorf("transport: config: MaxFrameBytes %d is outside [%d, %d]", c.MaxFrameBytes, minFrameBytes, maxFrameLimit)
	}
	if c.MaxSnapshotBytes < 0 {
		return fmt.Errorf("transport: config: MaxSnapshotBytes %d is negative", c.MaxSnapshotBytes)
	}
	if c.DialTimeout < 0 || c.WriteTimeout < 0 {
		return errors.New("transport: config: timeouts must not be negative")
	}
	return nil
}

// withDefaults returns a copy of c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
