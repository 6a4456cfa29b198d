package replica

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lockstep/lockstep/raft"
)

// Config configures a replica. Zero values of optional fields are useful
// defaults (see Validate).
type Config struct {
	// ID is this replica's ID, one of the keys of Peers. Required.
	ID raft.NodeID
	// ClusterID identifies the cluster; replicas of other clusters are
	// refused at the transport handshake. Required.
	ClusterID uint64
	// Peers maps every voter's ID (this one included) to its peer address
	// (host:port). On first start it is the initial membership.
	Peers map[raft.NodeID]string
	// Listener, if set, is where peers connect; otherwise the replica
	// listens on Peers[ID].
	Listener net.Listener
	// Store is the durable log. Required (storage.Open, or
	// NewMemoryLogStore for tests). The replica closes it in Stop.
	Store LogStore
	// TLS, if set, protects peer connections (both directions).
	TLS *tls.Config

	// TickInterval is the duration of one raft tick. Default 10ms.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks. Default 30 (300ms at
	// the default tick).
	ElectionTicks int
	// HeartbeatTicks is the heartbeat interval in ticks. Default 3.
	HeartbeatTicks int

	// SnapshotEntries is how many applied entries trigger a snapshot of the
	// state machine and compaction of the log. Default 10,000.
	SnapshotEntries uint64
	// CompactionOverhead is how many entries are kept behind a snapshot, so
	// that a briefly lagging follower catches up from the log rather than a
	// snapshot. Default 5,000.
	CompactionOverhead uint64

	// MaxProposalBatch bounds the proposals appended in one raft step (one
	// fsync). Default 4,096.
	MaxProposalBatch int
	// MaxEntryBytes bounds one command. Default 1.5 MiB.
	MaxEntryBytes int
	// ProposalQueue bounds proposals waiting for the raft loop. Default
	// 16,384; past it Propose blocks (back-pressure) until its context ends.
	ProposalQueue int

	// LeaseReads serves linearizable reads from the leader's lease instead
	// of a heartbeat round per batch (raft.ReadOnlyLeaseBased): a follower's
	// read still asks the leader for the commit index, but the leader
	// answers at once. The lease lasts 90% of ElectionTicks-2 ticks from the
	// heartbeat round that established it, timed by CLOCK_BOOTTIME, so a
	// paused or suspended leader does not outlive it. It assumes the
	// members' clocks run at rates within 10% of each other (NTP keeps them
	// within a few parts per million).
	LeaseReads bool
	// ReadTimeout bounds how long a linearizable read waits for its
	// ReadIndex round and for the state machine to apply the index it
	// returned; past it Read fails with ErrReadTimeout. Default 5s.
	ReadTimeout time.Duration

	// Seed seeds raft's randomized election timeouts. Zero derives one from
	// the ID.
	Seed uint64

	// Logger receives the replica's events. Nil discards them.
	Logger *slog.Logger
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.ID == raft.None {
		return errors.New("replica: config: ID must not be zero")
	}
	if c.ClusterID == 0 {
		return errors.New("replica: config: ClusterID must not be zero")
	}
	if _, ok := c.Peers[c.ID]; !ok {
		return fmt.Errorf("replica: config: Peers does not list this replica's ID %d", c.ID)
	}
	for id, addr := range c.Peers {
		if id == raft.None {
			return fmt.Errorf("replica: config: peer ID zero (address %q)", addr)
		}
		if addr == "" && (id != c.ID || c.Listener == nil) {
			return fmt.Errorf("replica: config: peer %d has no address", id)
		}
	}
	if c.Store == nil {
		return errors.New("replica: config: Store is required")
	}
	if c.TickInterval == 0 {
		c.TickInterval = 10 * time.Millisecond
	}
	if c.TickInterval < time.Millisecond {
		return fmt.Errorf("replica: config: TickInterval %v is below 1ms", c.TickInterval)
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 30
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 3
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return fmt.Errorf("replica: config: ElectionTicks %d must exceed HeartbeatTicks %d", c.ElectionTicks, c.HeartbeatTicks)
	}
	if c.LeaseReads && c.ElectionTicks < 3 {
		return fmt.Errorf("replica: config: LeaseReads needs ElectionTicks of at least 3, not %d: the lease is ElectionTicks-2 ticks", c.ElectionTicks)
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = 10000
	}
	if c.CompactionOverhead == 0 {
		c.CompactionOverhead = 5000
	}
	if c.MaxProposalBatch <= 0 {
		c.MaxProposalBatch = 4096
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = 3 << 19
	}
	if c.ProposalQueue <= 0 {
		c.ProposalQueue = 16384
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = uint64(c.ID) * 0x9e3779b97f4a7c15
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
