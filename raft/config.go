package raft

import (
	"errors"
	"fmt"
)

// ReadOnlyOption chooses how ReadIndex confirms leadership.
type ReadOnlyOption uint8

const (
	// ReadOnlySafe confirms leadership with a round of heartbeats acknowledged
	// by a quorum (§6.4). Always linearizable.
	ReadOnlySafe ReadOnlyOption = iota
	// ReadOnlyLeaseBased answers at once while the leader holds a lease
	// (§6.4.1), and falls back to a heartbeat round otherwise. The lease is
	// timed by Config.Now from the sending of the newest heartbeat a quorum
	// acknowledged, for LeaseDuration: every follower that acknowledged it
	// ignores votes for an election timeout after it heard it (§4.2.3), so
	// no other leader can be elected before then. Timing from the send makes
	// it independent of message delay, and timing with a clock rather than
	// ticks keeps a leader that was paused (and missed its ticks) from
	// trusting an expired lease. It relies on the members' clocks running at
	// nearly the same rate: LeaseDuration must be shorter than the election
	// timeout by more than the drift. Requires CheckQuorum, Now and
	// LeaseDuration. A restarted node ignores votes for an election timeout
	// too, as it may have acknowledged a heartbeat before it went down.
	ReadOnlyLeaseBased
)

// Config configures one raft node. The zero value of every optional field
// is a useful default (see Validate).
type Config struct {
	// ID is this node's identity; must not be None.
	ID NodeID
	// Storage is the stable log. Required.
	Storage Storage
	// Applied is the last index the state machine has applied, when
	// restarting from a state machine that survives restarts. Zero means the
	// application re-applies from the snapshot on.
	Applied Index

	// ElectionTicks is the number of Ticks a follower waits without hearing
	// from a leader before campaigning; the actual timeout is randomized in
	// [ElectionTicks, 2*ElectionTicks). Default 10. Must exceed
	// HeartbeatTicks.
	ElectionTicks int
	// HeartbeatTicks is the number of Ticks between leader heartbeats.
	// Default 1.
	HeartbeatTicks int

	// MaxBytesPerMsg bounds the entry bytes in one append message. Default
	// 1 MiB. At least one entry is always sent.
	MaxBytesPerMsg uint64
	// MaxInflightMsgs bounds the appends in flight to one follower in
	// replicate state (the pipelining window). Default 256.
	MaxInflightMsgs int
	// MaxInflightBytes bounds the entry bytes in flight to one follower.
	// Default 0: no byte bound beyond MaxInflightMsgs*MaxBytesPerMsg.
	MaxInflightBytes uint64
	// MaxUncommittedBytes bounds the entry bytes a leader accepts before they
	// commit; proposals past it are dropped (ErrProposalDropped). Default
	// 64 MiB.
	MaxUncommittedBytes uint64
	// MaxEntryBytes bounds one entry's payload; a larger proposal is refused
	// with ErrEntryTooLarge. Default 8 MiB.
	MaxEntryBytes uint64
	// MaxApplyBytesPerReady bounds the committed entry bytes handed out in one
	// Ready. Default 16 MiB.
	MaxApplyBytesPerReady uint64

	// PreVote enables the pre-vote phase (§9.6): a node only increases its
	// term once a quorum says it could win, so a rejoining partitioned node
	// does not depose a healthy leader.
	PreVote bool
	// CheckQuorum makes a leader step down when it has not heard from a
	// quorum within an election timeout (§6.2), and makes followers ignore
	// votes while they hear from a leader (§4.2.3).
	CheckQuorum bool
	// ReadOnly selects how ReadIndex confirms leadership.
	ReadOnly ReadOnlyOption
	// Now, with ReadOnlyLeaseBased, is the monotonic clock that times the
	// lease, in any unit from any origin (nanoseconds of CLOCK_BOOTTIME,
	// say: it must keep counting while the process is paused or the machine
	// suspended). Raft calls it when it sends heartbeats and when it answers
	// a read; it is the only time raft sees besides ticks, and raft keeps
	// no clock of its own.
	Now func() int64
	// LeaseDuration, with ReadOnlyLeaseBased, is how long a lease lasts
	// from the heartbeat that established it, in Now's unit. It must be
	// shorter than ElectionTicks-1 ticks by the worst clock drift between
	// members.
	LeaseDuration int64
	// DisableProposalForwarding makes followers refuse proposals instead of
	// forwarding them to the leader.
	DisableProposalForwarding bool

	// Seed seeds the randomized election timeout. Nodes of one cluster should
	// use different seeds; the same seed replays the same timeouts.
	Seed uint64
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.ID == None {
		return errors.New("raft: config: ID must not be zero")
	}
	if c.Storage == nil {
		return errors.New("raft: config: Storage is required")
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks < 0 {
		return fmt.Errorf("raft: config: HeartbeatTicks %d must be positive", c.HeartbeatTicks)
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return fmt.Errorf("raft: config: ElectionTicks %d must exceed HeartbeatTicks %d", c.ElectionTicks, c.HeartbeatTicks)
	}
	if c.MaxBytesPerMsg == 0 {
		c.MaxBytesPerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxInflightMsgs < 0 {
		return fmt.Errorf("raft: config: MaxInflightMsgs %d must be positive", c.MaxInflightMsgs)
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = 64 << 20
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 8 << 20
	}
	if c.MaxApplyBytesPerReady == 0 {
		c.MaxApplyBytesPerReady = 16 << 20
	}
	if c.MaxInflightBytes != 0 && c.MaxInflightBytes < c.MaxBytesPerMsg {
		return fmt.Errorf("raft: config: MaxInflightBytes %d is below MaxBytesPerMsg %d", c.MaxInflightBytes, c.MaxBytesPerMsg)
	}
	if c.ReadOnly == ReadOnlyLeaseBased {
		if !c.CheckQuorum {
			return errors.New("raft: config: lease-based reads (ReadOnlyLeaseBased) require CheckQuorum")
		}
		if c.Now == nil {
			return errors.New("raft: config: lease-based reads (ReadOnlyLeaseBased) require a clock (Now)")
		}
		if c.LeaseDuration <= 0 {
			return fmt.Errorf("raft: config: lease-based reads (ReadOnlyLeaseBased) require a positive LeaseDuration, not %d", c.LeaseDuration)
		}
	}
	if c.ReadOnly > ReadOnlyLeaseBased {
		return fmt.Errorf("raft: config: unknown ReadOnly option %d", c.ReadOnly)
	}
	return nil
}

// rng is a small deterministic generator (splitmix64): raft keeps no global
// randomness, and a seed replays the same election timeouts.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a value in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }
