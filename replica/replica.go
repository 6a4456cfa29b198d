package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/transport"
)

var (
	// ErrStopped is returned by calls on a replica that was stopped, or
	// that stopped itself after a fatal error (see Replica.Err).
	ErrStopped = errors.New("replica: stopped")
	// ErrNoLeader is returned when no leader is known to forward to. Retry
	// after a short pause: elections take about an election timeout.
	ErrNoLeader = errors.New("replica: no leader")
	// ErrProposalDropped means the command was not accepted, or was lost
	// in a leadership change before it committed. It was not applied;
	// retrying is safe.
	ErrProposalDropped = errors.New("replica: proposal dropped")
	// ErrOutcomeUnknown means the command may or may not have been applied:
	// its index was replaced by a snapshot before this replica saw it, or it
	// was forwarded to a leader whose term then ended.
	ErrOutcomeUnknown = errors.New("replica: proposal outcome unknown")
	// ErrCommandTooLarge is returned for a command over MaxEntryBytes.
	ErrCommandTooLarge = errors.New("replica: command too large")
	// ErrReadTimeout is returned by a linearizable Read that could not be
	// confirmed and applied within Config.ReadTimeout (a partitioned
	// follower, say). Nothing was read; retrying is safe.
	ErrReadTimeout = errors.New("replica: linearizable read timed out")
	// ErrNotDone is returned by Future.Result before the outcome is known.
	ErrNotDone = errors.New("replica: proposal outcome not known yet")
	// ErrQueueFull is returned by ProposeNotify when the proposal queue is
	// full. Nothing was proposed; ProposeAsync waits for room instead.
	ErrQueueFull = errors.New("replica: proposal queue full")
)

// ReadMode chooses the consistency of Read.
type ReadMode uint8

const (
	// ReadLinearizable reflects every command committed before Read was
	// called, on any replica (ReadIndex, §6.4 of the Raft thesis).
	ReadLinearizable ReadMode = iota
	// ReadSerializable reads the local state as it is: fast, possibly
	// stale, never reflecting uncommitted commands.
	ReadSerializable
)

// Replica is one running member of a replicated state machine.
type Replica[R any] struct {
	cfg   Config
	sm    StateMachine[R]
	store LogStore
	tr    *transport.Transport
	node  *raft.Node // owned by the raft loop goroutine

	propc chan proposal
	recvc chan []raft.Message
	// readKick wakes the raft loop when nextRead was created.
	readKick chan struct{}
	ctlc     chan func()
	applyc   chan applyTask
	// snapc hands a snapshot the apply loop took to the snapshot writer;
	// snapBusy is set from the hand-off until the writer has stored it,
	// so that at most one is in flight and the hand-off never waits.
	snapc    chan snapJob
	snapBusy atomic.Bool

	stopc    chan struct{}
	stopOnce sync.Once
	closed   sync.Once
	loops    sync.WaitGroup
	stopErr  error

	// seq numbers this replica's proposals; with its ID it names the
	// proposer of a log entry. It starts at a random point (seqStart), so
	// that the entries of an earlier run, re-applied after a restart, do
	// not resolve the proposals of this one.
	seq atomic.Uint64

	mu sync.Mutex // guards waiters, assigned, failure, stopped
	// waiters are the proposals of this replica awaiting their results,
	// by sequence number.
	waiters map[uint64]*Future[R]
	// assigned records the log index the leader gave each of its own
	// proposals, in proposal order: once the log is applied past an index
	// without delivering its proposal, the proposal was dropped.
	assigned []assignedIndex
	failure  error
	stopped  bool

	// readMu guards nextRead: the batch new linearizable reads join, which
	// the raft loop takes when it starts the next ReadIndex round.
	readMu   sync.Mutex
	nextRead *readBatch

	applied   atomic.Uint64
	appliedMu sync.Mutex // guards applyWait
	// applyWait holds the confirmed read batches waiting for the state
	// machine to apply their index; at most maxApplyWait of them.
	applyWait []*readBatch
	leader    atomic.Uint64
	term      atomic.Uint64
	// leaderChanges and committed feed Counters.
	leaderChanges atomic.Uint64
	committed     atomic.Uint64
	leaderMu      sync.Mutex    // guards leaderCh
	leaderCh      chan struct{} // closed (and replaced) when the leader changes
}

type proposal struct {
	seq  uint64
	data []byte
}

type assignedIndex struct {
	index raft.Index
	seq   uint64
}

type applyTask struct {
	snap    *raft.Snapshot
	entries []raft.Entry
}

// readBatch is the linearizable reads that share one ReadIndex round:
// every reader that arrived before the round started. done is closed once
// the state machine applied index, or err is set.
type readBatch struct {
	done  chan struct{}
	index raft.Index
	err   error
	// since is the raft loop's tick count when the round started; set by
	// the raft loop before the batch is shared with the apply side.
	since uint64
}

func (b *readBatch) fail(err error) {
	b.err = err
	close(b.done)
}

// Future is the pending result of an asynchronous proposal.
type Future[R any] struct {
	seq  uint64
	done chan struct{} // closed once res and err are set
	res  R
	err  error
	r    *Replica[R]
	// forwarded is set (under r.mu) when the proposal went to another
	// replica's leader: no index was assigned here, so only a change of
	// term tells that it may have been lost.
	forwarded bool
	// notify, if set, is called with the outcome (see ProposeNotify).
	notify func(R, error)
}

type outcome[R any] struct {
	res R
	err error
}

// complete records the outcome and wakes the waiters. Only the one who
// took f out of r.waiters calls it, so it runs at most once.
func (f *Future[R]) complete(o outcome[R]) {
	f.res, f.err = o.res, o.err
	close(f.done)
	if f.notify != nil {
		f.notify(o.res, o.err)
	}
}

// Wait blocks until the command was applied (returning its result), was
// dropped, or ctx ends. After ctx ends the command may still be applied.
func (f *Future[R]) Wait(ctx context.Context) (R, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		f.Abandon()
		var zero R
		return zero, ctx.Err()
	}
}

// Done is closed once the outcome is known; Result then returns it. It lets
// a caller wait on the proposal together with channels of its own (a timer,
// a connection closing) without deriving a context per call.
func (f *Future[R]) Done() <-chan struct{} { return f.done }

// Result returns the outcome once Done is closed, and ErrNotDone before.
func (f *Future[R]) Result() (R, error) {
	select {
	case <-f.done:
		return f.res, f.err
	default:
		var zero R
		return zero, ErrNotDone
	}
}

// Abandon stops waiting for the outcome: Done may then never close. The
// command may still be applied. It reports whether the outcome was still
// pending (and this the first Abandon): if so, a ProposeNotify callback
// will not be called; if not, it has been or is being called, or an
// earlier Abandon stopped it.
func (f *Future[R]) Abandon() bool { return f.r.forget(f.seq) }

// Start opens a replica: it restores the state machine from the store's
// latest snapshot, starts the transport, the raft loop and the apply loop,
// and returns. A store with no log is bootstrapped with Peers as the
// initial voters.
func Start[R any](cfg Config, sm StateMachine[R]) (*Replica[R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica[R]{
		cfg:      cfg,
		sm:       sm,
		store:    cfg.Store,
		propc:    make(chan proposal, cfg.ProposalQueue),
		recvc:    make(chan []raft.Message, 256),
		readKick: make(chan struct{}, 1),
		ctlc:     make(chan func(), 64),
		applyc:   make(chan applyTask, 64),
		snapc:    make(chan snapJob, 1),
		stopc:    make(chan struct{}),
		waiters:  map[uint64]*Future[R]{},
		leaderCh: make(chan struct{}),
	}
	r.seq.Store(seqStart())
	if err := r.bootstrap(); err != nil {
		return nil, err
	}
	snap, err := r.store.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("replica: reading the latest snapshot: %w", err)
	}
	if !snap.IsEmpty() {
		if err := sm.Restore(bytes.NewReader(snap.Data)); err != nil {
			return nil, fmt.Errorf("replica: restoring the state machine from the snapshot at %d: %w", snap.Meta.Index, err)
		}
		r.applied.Store(uint64(snap.Meta.Index))
	}
	// The log keeps CompactionOverhead entries behind a snapshot: raft must
	// not hand back the ones the restored state already holds. Applied
	// may not pass the commit index raft loads; a snapshot a crash left
	// ahead of the saved commit index is still skipped by the apply loop.
	hs, cs, err := r.store.InitialState()
	if err != nil {
		return nil, fmt.Errorf("replica: reading the initial state: %w", err)
	}
	rcfg := raft.Config{
		ID:             cfg.ID,
		Storage:        cfg.Store,
		Applied:        min(snap.Meta.Index, hs.Commit),
		ElectionTicks:  cfg.ElectionTicks,
		HeartbeatTicks: cfg.HeartbeatTicks,
		PreVote:        true,
		CheckQuorum:    true,
		MaxEntryBytes:  uint64(cfg.MaxEntryBytes) + 32,
		Seed:           cfg.Seed,
	}
	if cfg.LeaseReads {
		now, err := bootClock()
		if err != nil {
			return nil, fmt.Errorf("replica: lease reads need a clock: %w", err)
		}
		rcfg.ReadOnly = raft.ReadOnlyLeaseBased
		rcfg.Now = now
		rcfg.LeaseDuration = int64(leaseDuration(cfg.ElectionTicks, cfg.TickInterval))
	}
	node, err := raft.NewNode(rcfg)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r.node = node
	peers := map[raft.NodeID]string{}
	for id, addr := range cfg.Peers {
		if id != cfg.ID {
			peers[id] = addr
		}
	}
	tcfg := transport.Config{
		ClusterID: cfg.ClusterID,
		NodeID:    cfg.ID,
		Listener:  cfg.Listener,
		Peers:     peers,
		TLS:       cfg.TLS,
		Logger:    cfg.Logger,
	}
	if cfg.Listener == nil {
		tcfg.ListenAddr = cfg.Peers[cfg.ID]
	}
	tr, err := transport.New(tcfg, handler[R]{r})
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	if err := tr.Start(); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r.tr = tr
	st := &snapshotter{lastIndex: snap.Meta.Index, conf: snap.Meta.ConfState}
	if st.conf.IsEmpty() {
		st.conf = cs
	}
	r.loops.Add(3)
	go r.runRaft()
	go r.runApply(st)
	go r.runSnapshots()
	cfg.Logger.Info("replica started", "id", cfg.ID, "cluster", cfg.ClusterID, "applied", r.applied.Load())
	return r, nil
}

// bootstrap records the initial membership in an empty store.
func (r *Replica[R]) bootstrap() error {
	hs, cs, err := r.store.InitialState()
	if err != nil {
		return fmt.Errorf("replica: reading the stored state: %w", err)
	}
	r.committed.Store(uint64(hs.Commit))
	if !cs.IsEmpty() {
		return nil
	}
	last, err := r.store.LastIndex()
	if err != nil {
		return fmt.Errorf("replica: reading the stored log: %w", err)
	}
	if last != 0 || !hs.IsEmpty() {
		return fmt.Errorf("replica: store has a log (last index %d, term %d) but no membership", last, hs.Term)
	}
	voters := make([]raft.NodeID, 0, len(r.cfg.Peers))
	for id := range r.cfg.Peers {
		voters = append(voters, id)
	}
	if err := r.store.Bootstrap(raft.ConfState{Voters: voters}); err != nil {
		return fmt.Errorf("replica: bootstrapping membership: %w", err)
	}
	return nil
}

// Propose replicates cmd and returns its result once applied on this
// replica. A follower forwards the command to the leader. If ctx ends first
// the outcome is unknown: the command may still be applied later, so a
// service that needs exactly-once effects must deduplicate (for instance
// with client and request IDs inside cmd).
func (r *Replica[R]) Propose(ctx context.Context, cmd []byte) (R, error) {
	f, err := r.ProposeAsync(ctx, cmd)
	if err != nil {
		var zero R
		return zero, err
	}
	return f.Wait(ctx)
}

// ProposeAsync submits cmd without waiting for it to apply; Wait on the
// returned Future collects the result. It blocks only while the proposal
// queue is full (back-pressure), until ctx ends. If the replica stops
// meanwhile, the Future is returned, already failed.
func (r *Replica[R]) ProposeAsync(ctx context.Context, cmd []byte) (*Future[R], error) {
	return r.submit(ctx, cmd, nil, true)
}

// ProposeNotify is ProposeAsync with a callback, and without waiting:
// if the proposal queue is full it returns ErrQueueFull at once. Unless
// the Future is abandoned first (see Abandon), notify is called once with
// the outcome, on the replica's goroutine that learns it (the apply loop,
// mostly), so it must be quick and must not block. It is not called if
// ProposeNotify returns an error. It saves a caller the goroutine that
// would wait on Done.
func (r *Replica[R]) ProposeNotify(cmd []byte, notify func(R, error)) (*Future[R], error) {
	return r.submit(context.Background(), cmd, notify, false)
}

// submit proposes cmd: if wait, waiting for room in the proposal queue
// until ctx ends; if not, not at all.
func (r *Replica[R]) submit(ctx context.Context, cmd []byte, notify func(R, error), wait bool) (*Future[R], error) {
	if len(cmd) > r.cfg.MaxEntryBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCommandTooLarge, len(cmd), r.cfg.MaxEntryBytes)
	}
	seq := r.seq.Add(1)
	f := &Future[R]{seq: seq, done: make(chan struct{}), r: r, notify: notify}
	data := encodeCommand(r.cfg.ID, seq, cmd)
	r.mu.Lock()
	if r.stopped {
		err := r.stoppedErrLocked()
		r.mu.Unlock()
		return nil, err
	}
	r.waiters[seq] = f
	r.mu.Unlock()
	p := proposal{seq: seq, data: data}
	var err error
	if wait {
		select {
		case r.propc <- p:
			return f, nil
		case <-ctx.Done():
			err = ctx.Err()
		case <-r.stopc:
			err = r.Err()
		}
	} else {
		select {
		case r.propc <- p:
			return f, nil
		default:
			err = ErrQueueFull
		}
	}
	if !r.forget(seq) {
		return f, nil // Stop failed it meanwhile, through notify too
	}
	return nil, err
}

// Read calls query once the local state machine is current enough for
// mode: for ReadLinearizable, once it has applied everything committed
// before Read was called; for ReadSerializable, at once. query runs on the
// caller's goroutine and may run concurrently with Apply. A linearizable
// Read fails with ErrNoLeader when its ReadIndex round cannot be confirmed
// within two election timeouts, and with ErrReadTimeout when the index it
// returned is not applied within Config.ReadTimeout; both are safe to
// retry.
func (r *Replica[R]) Read(ctx context.Context, mode ReadMode, query func() error) error {
	if mode == ReadSerializable {
		return query()
	}
	b := r.joinRead()
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stopc:
		return r.Err()
	}
	if b.err != nil {
		return b.err
	}
	return query()
}

// joinRead returns the batch of reads the next ReadIndex round will
// confirm. The round starts after this call, so it is issued after the read
// was: what it confirms includes everything committed before Read.
func (r *Replica[R]) joinRead() *readBatch {
	r.readMu.Lock()
	b := r.nextRead
	if b == nil {
		b = &readBatch{done: make(chan struct{})}
		r.nextRead = b
		select {
		case r.readKick <- struct{}{}:
		default:
		}
	}
	r.readMu.Unlock()
	return b
}

// takeRead hands the raft loop the batch waiting for a round, if any.
func (r *Replica[R]) takeRead() *readBatch {
	r.readMu.Lock()
	b := r.nextRead
	r.nextRead = nil
	r.readMu.Unlock()
	return b
}

// maxApplyWait bounds the confirmed batches waiting for the apply loop;
// while it is reached no new round starts, and new reads gather in one
// batch.
const maxApplyWait = 256

// readConfirmed releases b once index is applied: at once if it already
// is, else when setApplied gets there.
func (r *Replica[R]) readConfirmed(b *readBatch, index raft.Index) {
	b.index = index
	r.appliedMu.Lock()
	if raft.Index(r.applied.Load()) >= index {
		close(b.done)
	} else {
		r.applyWait = append(r.applyWait, b)
	}
	r.appliedMu.Unlock()
}

// applyWaitFull reports whether maxApplyWait batches wait for the apply
// loop.
func (r *Replica[R]) applyWaitFull() bool {
	r.appliedMu.Lock()
	defer r.appliedMu.Unlock()
	return len(r.applyWait) >= maxApplyWait
}

// expireApplyWait fails the batches whose round started more than limit
// ticks before now.
func (r *Replica[R]) expireApplyWait(now uint64, limit uint64) {
	r.appliedMu.Lock()
	defer r.appliedMu.Unlock()
	keep := r.applyWait[:0]
	for _, b := range r.applyWait {
		if now-b.since > limit {
			b.fail(fmt.Errorf("%w: index %d not applied in time (applied %d)", ErrReadTimeout, b.index, r.applied.Load()))
			continue
		}
		keep = append(keep, b)
	}
	clear(r.applyWait[len(keep):])
	r.applyWait = keep
}

func (r *Replica[R]) setApplied(i raft.Index) {
	r.applied.Store(uint64(i))
	r.appliedMu.Lock()
	if len(r.applyWait) > 0 {
		keep := r.applyWait[:0]
		for _, b := range r.applyWait {
			if b.index <= i {
				close(b.done)
				continue
			}
			keep = append(keep, b)
		}
		clear(r.applyWait[len(keep):])
		r.applyWait = keep
	}
	r.appliedMu.Unlock()
}

// Status reports this replica's view of the cluster.
type Status struct {
	raft.Status
	// AppliedIndex is the last index applied to the state machine (raft's
	// Applied is the last one handed to the apply loop).
	AppliedIndex raft.Index
	Transport    transport.Stats
}

// Status returns the replica's current status.
func (r *Replica[R]) Status(ctx context.Context) (Status, error) {
	ch := make(chan raft.Status, 1)
	if err := r.control(ctx, func() { ch <- r.node.Status() }); err != nil {
		return Status{}, err
	}
	select {
	case st := <-ch:
		return Status{Status: st, AppliedIndex: raft.Index(r.applied.Load()), Transport: r.tr.Stats()}, nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	case <-r.stopc:
		return Status{}, r.Err()
	}
}

// Counters are running figures for monitoring, read without blocking.
type Counters struct {
	// LeaderChanges counts the changes of leader this replica saw (to no
	// leader included).
	LeaderChanges uint64
	// Committed is the last index this replica knows committed, Applied
	// the last its state machine applied.
	Committed, Applied raft.Index
	// Pending is how many proposals made here wait for their outcome.
	Pending   int
	Transport transport.Stats
}

// Counters returns the replica's running figures. Unlike Status it does
// not go through the raft loop, so it is cheap and never blocks on it.
func (r *Replica[R]) Counters() Counters {
	r.mu.Lock()
	pending := len(r.waiters)
	r.mu.Unlock()
	return Counters{
		LeaderChanges: r.leaderChanges.Load(),
		Committed:     raft.Index(r.committed.Load()),
		Applied:       raft.Index(r.applied.Load()),
		Pending:       pending,
		Transport:     r.tr.Stats(),
	}
}

// Leader returns the leader this replica knows of (raft.None if none) and
// its term. It does not block.
func (r *Replica[R]) Leader() (raft.NodeID, raft.Term) {
	return raft.NodeID(r.leader.Load()), raft.Term(r.term.Load())
}

// ID returns this replica's ID.
func (r *Replica[R]) ID() raft.NodeID { return r.cfg.ID }

// Addr returns the address peers connect to.
func (r *Replica[R]) Addr() string { return r.tr.Addr().String() }

// TransferLeadership asks the leader to hand over to the voter to (§3.10
// of the Raft thesis) and waits until this replica sees to lead, or ctx ends.
func (r *Replica[R]) TransferLeadership(ctx context.Context, to raft.NodeID) error {
	if _, ok := r.cfg.Peers[to]; !ok {
		return fmt.Errorf("replica: transfer target %d is not a member", to)
	}
	for {
		r.leaderMu.Lock()
		ch := r.leaderCh
		r.leaderMu.Unlock()
		if raft.NodeID(r.leader.Load()) == to {
			return nil
		}
		errc := make(chan error, 1)
		if err := r.control(ctx, func() { errc <- r.node.TransferLeadership(to) }); err != nil {
			return err
		}
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("replica: transferring leadership to %d: %w", to, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopc:
			return r.Err()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopc:
			return r.Err()
		}
	}
}

// control runs f on the raft loop.
func (r *Replica[R]) control(ctx context.Context, f func()) error {
	select {
	case r.ctlc <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stopc:
		return r.Err()
	}
}

// Done is closed when the replica stops, by Stop or after a fatal error.
func (r *Replica[R]) Done() <-chan struct{} { return r.stopc }

// Err returns the fatal error that stopped the replica, ErrStopped after a
// plain Stop, or nil while it runs.
func (r *Replica[R]) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		return nil
	}
	return r.stoppedErrLocked()
}

func (r *Replica[R]) stoppedErrLocked() error {
	if r.failure != nil {
		return fmt.Errorf("%w: %w", ErrStopped, r.failure)
	}
	return ErrStopped
}

// fail stops the replica because it can no longer be trusted to stay
// identical to the others (a disk or state machine error).
func (r *Replica[R]) fail(err error) {
	r.cfg.Logger.Error("replica stopping after a fatal error", "id", r.cfg.ID, "err", err)
	r.mu.Lock()
	if r.failure == nil {
		r.failure = err
	}
	r.mu.Unlock()
	r.closeStop()
}

func (r *Replica[R]) closeStop() {
	r.closed.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		close(r.stopc)
	})
}

// Stop stops every goroutine of the replica, fails pending proposals with
// ErrStopped and closes the store. It is safe to call more than once.
func (r *Replica[R]) Stop() error {
	r.stopOnce.Do(func() {
		r.closeStop()
		err := r.tr.Close()
		r.loops.Wait()
		r.mu.Lock()
		waiters := r.waiters
		r.waiters = map[uint64]*Future[R]{}
		stopErr := r.stoppedErrLocked()
		r.mu.Unlock()
		for _, f := range waiters {
			f.complete(outcome[R]{err: stopErr})
		}
		r.stopErr = errors.Join(err, r.store.Close())
		r.cfg.Logger.Info("replica stopped", "id", r.cfg.ID)
	})
	return r.stopErr
}

// forget takes a proposal out of the waiting ones, reporting whether it
// still waited.
func (r *Replica[R]) forget(seq uint64) bool {
	r.mu.Lock()
	_, ok := r.waiters[seq]
	delete(r.waiters, seq)
	r.mu.Unlock()
	return ok
}

// resolve delivers an outcome to a waiting proposal, if it still waits.
func (r *Replica[R]) resolve(seq uint64, o outcome[R]) {
	r.mu.Lock()
	f := r.waiters[seq]
	delete(r.waiters, seq)
	r.mu.Unlock()
	if f != nil {
		f.complete(o)
	}
}

// leaseDuration is the lease for an election timeout of electionTicks
// ticks: a follower that heard a heartbeat ignores votes until it counted
// electionTicks more ticks, at least electionTicks-1 tick intervals later
// (the first may have been waiting when the heartbeat came). One more tick
// and 10% come off for the drift between clocks.
func leaseDuration(electionTicks int, tick time.Duration) time.Duration {
	return time.Duration(electionTicks-2) * tick * 9 / 10
}

// seqStart is where a run's sequence numbers start: random in [2^62,
// 2^63). Two runs of one replica collide only if their ranges overlap; with
// n proposals per run the chance is about 2n/2^62 per pair of runs (for a
// billion proposals, one in two billion).
func seqStart() uint64 { return 1<<62 | rand.Uint64()>>2 }

// encodeCommand frames a command with the proposer's ID and sequence
// number, so that the replica that proposed it can route its result.
func encodeCommand(id raft.NodeID, seq uint64, cmd []byte) []byte {
	b := make([]byte, 0, len(cmd)+2*binary.MaxVarintLen64)
	b = binary.AppendUvarint(b, uint64(id))
	b = binary.AppendUvarint(b, seq)
	return append(b, cmd...)
}

func decodeCommand(data []byte) (raft.NodeID, uint64, []byte, error) {
	id, n := binary.Uvarint(data)
	if n <= 0 {
		return 0, 0, nil, errors.New("replica: entry has a malformed proposer ID")
	}
	seq, m := binary.Uvarint(data[n:])
	if m <= 0 {
		return 0, 0, nil, errors.New("replica: entry has a malformed sequence number")
	}
	return raft.NodeID(id), seq, data[n+m:], nil
}

// handler receives the transport's deliveries and reports.
type handler[R any] struct{ r *Replica[R] }

func (h handler[R]) HandleMessages(msgs []raft.Message) {
	select {
	case h.r.recvc <- msgs:
	case <-h.r.stopc:
	}
}

func (h handler[R]) ReportUnreachable(id raft.NodeID) {
	select {
	case h.r.ctlc <- func() { h.r.node.ReportUnreachable(id) }:
	case <-h.r.stopc:
	default:
		// The loop is busy; raft learns of the peer's state from the next
		// missing response anyway.
	}
}

func (h handler[R]) ReportSnapshot(id raft.NodeID, ok bool) {
	select {
	case h.r.ctlc <- func() { h.r.node.ReportSnapshot(id, ok) }:
	case <-h.r.stopc:
	}
}
