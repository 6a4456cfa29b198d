package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep/lockstep/internal/leaktest"
	"github.com/lockstep/lockstep/raft"
)

// counter is a test state machine: each command adds its value (a uvarint)
// to a total and records the command's index; the result is the new total.
type counter struct {
	mu      sync.RWMutex
	total   uint64
	applied []raft.Index
	values  []uint64
	// failAt makes Apply fail at that index, to test fatal errors.
	failAt raft.Index
	// hold, when set, makes Apply wait until it is closed.
	hold atomic.Pointer[chan struct{}]
}

func (c *counter) Apply(cmds []Command, results []uint64) error {
	if h := c.hold.Load(); h != nil {
		<-*h
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cmd := range cmds {
		if c.failAt != 0 && cmd.Index >= c.failAt {
			return fmt.Errorf("counter: refusing to apply %d", cmd.Index)
		}
		v, n := binary.Uvarint(cmd.Data)
		if n <= 0 {
			return fmt.Errorf("counter: malformed command at %d", cmd.Index)
		}
		c.total += v
		c.applied = append(c.applied, cmd.Index)
		c.values = append(c.values, v)
		results[i] = c.total
	}
	return nil
}

func (c *counter) Snapshot(w io.Writer) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, err := w.Write(binary.AppendUvarint(nil, c.total))
	return err
}

func (c *counter) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return errors.New("counter: malformed snapshot")
	}
	c.mu.Lock()
	c.total = v
	c.applied = nil
	c.mu.Unlock()
	return nil
}

func (c *counter) get() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.total
}

func add(n uint64) []byte { return binary.AppendUvarint(nil, n) }

// testCluster runs replicas in this process over loopback TCP.
type testCluster struct {
	t        testing.TB
	peers    map[raft.NodeID]string
	stores   map[raft.NodeID]LogStore
	sms      map[raft.NodeID]*counter
	replicas map[raft.NodeID]*Replica[uint64]
	tune     func(*Config)
	// nextSM, if set for an ID, is the state machine its next start uses.
	nextSM map[raft.NodeID]*counter
}

func newTestCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	c := &testCluster{
		t:        t,
		peers:    map[raft.NodeID]string{},
		stores:   map[raft.NodeID]LogStore{},
		sms:      map[raft.NodeID]*counter{},
		replicas: map[raft.NodeID]*Replica[uint64]{},
		tune:     tune,
	}
	lns := map[raft.NodeID]net.Listener{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		id := raft.NodeID(i)
		lns[id] = ln
		c.peers[id] = ln.Addr().String()
		c.stores[id] = NewMemoryLogStore()
	}
	for id, ln := range lns {
		c.start(id, ln)
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *testCluster) config(id raft.NodeID, ln net.Listener) Config {
	cfg := Config{
		ID:             id,
		ClusterID:      7,
		Peers:          c.peers,
		Listener:       ln,
		Store:          c.stores[id],
		TickInterval:   5 * time.Millisecond,
		ElectionTicks:  20,
		HeartbeatTicks: 2,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

func (c *testCluster) start(id raft.NodeID, ln net.Listener) {
	c.t.Helper()
	if ln == nil {
		var err error
		// The port was ours a moment ago; retry briefly while the kernel
		// lets go of it.
		for i := 0; i < 100; i++ {
			ln, err = net.Listen("tcp", c.peers[id])
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			c.t.Fatalf("relisten %d: %v", id, err)
		}
	}
	sm := &counter{}
	if next := c.nextSM[id]; next != nil {
		sm = next
		delete(c.nextSM, id)
	}
	r, err := Start[uint64](c.config(id, ln), sm)
	if err != nil {
		c.t.Fatalf("start %d: %v", id, err)
	}
	c.sms[id] = sm
	c.replicas[id] = r
}

func (c *testCluster) stop(id raft.NodeID) {
	if r := c.replicas[id]; r != nil {
		r.Stop()
		delete(c.replicas, id)
	}
}

func (c *testCluster) stopAll() {
	for id := range c.replicas {
		c.stop(id)
	}
}

// waitLeader waits until every running replica agrees on one leader.
func (c *testCluster) waitLeader() raft.NodeID {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var lead raft.NodeID
		agree := true
		for _, r := range c.replicas {
			l, _ := r.Leader()
			if l == raft.None || (lead != raft.None && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree && lead != raft.None && c.replicas[lead] != nil {
			return lead
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader elected within 20s")
	return raft.None
}

// propose retries through leader changes until the command is applied.
func (c *testCluster) propose(via raft.NodeID, n uint64) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r := c.replicas[via]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := r.Propose(ctx, add(n))
		cancel()
		if err == nil {
			return res
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("proposal via %d did not apply within 20s", via)
	return 0
}

func (c *testCluster) waitTotal(id raft.NodeID, want uint64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c.sms[id].get() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("replica %d total: got %d, want %d", id, c.sms[id].get(), want)
}

func TestProposeAndLinearizableReadOnThreeReplicas(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	var follower raft.NodeID = 1
	if follower == lead {
		follower = 2
	}
	if got := c.propose(lead, 5); got != 5 {
		t.Fatalf("first result: got %d, want 5", got)
	}
	// A follower forwards to the leader and gets its own result.
	if got := c.propose(follower, 7); got != 12 {
		t.Fatalf("forwarded result: got %d, want 12", got)
	}
	// A linearizable read on a follower sees both writes.
	var seen uint64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.replicas[follower].Read(ctx, ReadLinearizable, func() error { seen = c.sms[follower].get(); return nil }); err != nil {
		t.Fatal(err)
	}
	if seen != 12 {
		t.Fatalf("linearizable read on follower: got %d, want 12", seen)
	}
	for id := range c.replicas {
		c.waitTotal(id, 12)
	}
	c.stopAll()
}

// Concurrent readers share ReadIndex rounds; each must still see every
// write acknowledged before its Read began, on whichever replica it reads,
// with heartbeat rounds and with lease reads.
func TestConcurrentLinearizableReadsSeeEarlierWrites(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			concurrentReadsSeeEarlierWrites(t, func(cfg *Config) { cfg.LeaseReads = lease })
		})
	}
}

func concurrentReadsSeeEarlierWrites(t *testing.T, tune func(*Config)) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, tune)
	c.waitLeader()
	ids := []raft.NodeID{1, 2, 3}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				w, rd := ids[(g+i)%3], ids[(g+i+1+g%2)%3]
				acked, err := c.replicas[w].Propose(ctx, add(1))
				if err != nil {
					errs <- fmt.Errorf("propose via %d: %w", w, err)
					return
				}
				var seen uint64
				if err := c.replicas[rd].Read(ctx, ReadLinearizable, func() error { seen = c.sms[rd].get(); return nil }); err != nil {
					errs <- fmt.Errorf("read on %d: %w", rd, err)
					return
				}
				if seen < acked {
					errs <- fmt.Errorf("read on %d saw total %d after a write acknowledged at total %d", rd, seen, acked)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.stopAll()
}

// A linearizable read on a replica whose state machine cannot apply the
// confirmed index fails with ErrReadTimeout after ReadTimeout, and reads
// work again once it catches up.
func TestReadTimesOutWhileApplyIsStuck(t *testing.T) {
	defer leaktest.Check(t)()
	const timeout = 300 * time.Millisecond
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.ReadTimeout = timeout })
	lead := c.waitLeader()
	c.propose(lead, 1)
	var follower raft.NodeID = 1
	if follower == lead {
		follower = 2
	}
	c.waitTotal(follower, 1)
	hold := make(chan struct{})
	var release sync.Once
	unhold := func() { release.Do(func() { c.sms[follower].hold.Store(nil); close(hold) }) }
	defer unhold() // before the cluster stops: a held apply loop cannot stop
	c.sms[follower].hold.Store(&hold)
	c.propose(lead, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := c.replicas[follower].Read(ctx, ReadLinearizable, func() error { return nil })
	took := time.Since(start)
	if !errors.Is(err, ErrReadTimeout) {
		t.Fatalf("read while apply is stuck: got %v after %v, want ErrReadTimeout", err, took)
	}
	// Not before ReadTimeout (less a tick of rounding); no upper bound
	// beyond ctx's, which a slow machine may need.
	if took < timeout/2 {
		t.Errorf("read failed after %v; ReadTimeout is %v", took, timeout)
	}

	unhold()
	var seen uint64
	if err := c.replicas[follower].Read(ctx, ReadLinearizable, func() error { seen = c.sms[follower].get(); return nil }); err != nil {
		t.Fatalf("read after apply caught up: %v", err)
	}
	if seen != 3 {
		t.Fatalf("read after apply caught up: total %d, want 3", seen)
	}
	c.stopAll()
}

// A restarted replica re-applies its log, which holds its own proposals of
// before the restart. Those must not resolve the proposals it makes after:
// a proposer's sequence numbers are unique across its restarts, not just
// within one run. Here the re-application is held until new proposals wait,
// and each new result must come from a command applied after every old one.
func TestRestartedReplicaDoesNotResolveNewProposalsWithOldEntries(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	var id raft.NodeID = 1
	if id == lead {
		id = 2
	}
	var total uint64
	for i := 0; i < 20; i++ {
		total = c.propose(id, 1)
	}
	c.waitTotal(id, total)
	c.stop(id)

	hold := make(chan struct{})
	var release sync.Once
	unhold := func() { release.Do(func() { close(hold) }) }
	defer unhold()
	sm := &counter{}
	sm.hold.Store(&hold)
	c.nextSM = map[raft.NodeID]*counter{id: sm}
	c.start(id, nil)
	c.waitLeader()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var fs []*Future[uint64]
	for i := 0; i < 10; i++ {
		f, err := c.replicas[id].ProposeAsync(ctx, add(1000))
		if err != nil {
			t.Fatalf("proposal %d after the restart: %v", i, err)
		}
		fs = append(fs, f)
	}
	unhold()
	for i, f := range fs {
		res, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("proposal %d after the restart: %v", i, err)
		}
		if res <= total || (res-total)%1000 != 0 {
			t.Errorf("proposal %d after the restart got result %d; before the restart the total was %d, so its own result is %d plus a multiple of 1000", i, res, total, total)
		}
	}
	c.stopAll()
}

func TestLeaderKilledWritesContinueAndItCatchesUp(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	var total uint64
	for i := 0; i < 20; i++ {
		total = c.propose(lead, 1)
	}
	c.stop(lead)
	newLead := c.waitLeader()
	if newLead == lead {
		t.Fatalf("leader %d was stopped but is still reported as leader", lead)
	}
	for i := 0; i < 20; i++ {
		total = c.propose(newLead, 1)
	}
	if total != 40 {
		t.Fatalf("total after failover: got %d, want 40 (no write lost or applied twice)", total)
	}
	c.start(lead, nil)
	c.waitTotal(lead, 40)
	c.stopAll()
}

func TestFarBehindFollowerCatchesUpFromSnapshot(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotEntries = 50
		cfg.CompactionOverhead = 10
	})
	lead := c.waitLeader()
	var lagger raft.NodeID = 1
	if lagger == lead {
		lagger = 2
	}
	c.stop(lagger)
	var total uint64
	for i := 0; i < 300; i++ {
		total = c.propose(lead, 2)
	}
	first, err := c.stores[lead].FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := c.stores[lagger].LastIndex()
	if first <= last+1 {
		t.Fatalf("leader's log starts at %d, lagger has up to %d: the test needs compaction past the lagger", first, last)
	}
	c.start(lagger, nil)
	c.waitTotal(lagger, total)
	snap, _ := c.stores[lagger].Snapshot()
	if snap.IsEmpty() {
		t.Fatal("lagger caught up without installing a snapshot")
	}
	c.stopAll()
}

func TestReplicaOfAnotherClusterIsRefused(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	c.propose(lead, 1)
	// A stranger claims ID 3's place but belongs to cluster 8.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := map[raft.NodeID]string{1: c.peers[1], 2: c.peers[2], 3: ln.Addr().String()}
	stranger, err := Start[uint64](Config{ID: 3, ClusterID: 8, Peers: peers, Listener: ln, Store: NewMemoryLogStore(),
		TickInterval: 5 * time.Millisecond, ElectionTicks: 20, HeartbeatTicks: 2}, &counter{})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Stop()
	// Wait until the stranger has tried the cluster and had its messages
	// refused (dropped after the handshake failed), so that the checks
	// below are about a refusal, not about an attempt not yet made.
	var st Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = stranger.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st.Transport.MessagesDropped > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stranger sent nothing the cluster could refuse within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l, _ := stranger.Leader(); l != raft.None && l != 3 {
		t.Fatalf("stranger learned of leader %d from another cluster", l)
	}
	if st.Commit != 0 {
		t.Fatalf("stranger committed up to %d: it talked to the cluster", st.Commit)
	}
	stranger.Stop()
	c.stopAll()
}

func TestStateMachineErrorStopsTheReplicaLoudly(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	c.propose(lead, 1)
	var bad raft.NodeID = 1
	if bad == lead {
		bad = 2
	}
	c.sms[bad].mu.Lock()
	c.sms[bad].failAt = 1
	c.sms[bad].mu.Unlock()
	c.propose(lead, 1)
	select {
	case <-c.replicas[bad].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("replica kept running after its state machine failed")
	}
	if err := c.replicas[bad].Err(); !errors.Is(err, ErrStopped) || err == ErrStopped {
		t.Fatalf("Err: got %v, want ErrStopped wrapping the apply failure", err)
	}
	_, err := c.replicas[bad].Propose(context.Background(), add(1))
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose on a failed replica: got %v, want ErrStopped", err)
	}
	c.stopAll()
}

func TestWholeClusterRestartsFromDisk(t *testing.T) {
	defer leaktest.Check(t)()
	dir := t.TempDir()
	c := newTestCluster(t, 3, nil)
	// Swap the in-memory stores for disk ones before anything is written:
	// restart the fresh cluster on disk stores.
	c.stopAll()
	open := func(id raft.NodeID) LogStore {
		s, err := OpenDiskStore(fmt.Sprintf("%s/%d", dir, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for id := range c.peers {
		c.stores[id] = open(id)
		c.start(id, nil)
	}
	lead := c.waitLeader()
	var total uint64
	for i := 0; i < 30; i++ {
		total = c.propose(lead, 3)
	}
	c.stopAll()
	for id := range c.peers {
		c.stores[id] = open(id)
		c.start(id, nil)
	}
	lead = c.waitLeader()
	if got := c.propose(lead, 1); got != total+1 {
		t.Fatalf("after a full restart: got total %d, want %d", got, total+1)
	}
	c.stopAll()
}

// Proposals are never acknowledged twice or lost across leader changes:
// five replicas, concurrent clients with unique commands, the leader
// stopped twice mid-workload. Every acknowledged command must be applied
// exactly once, at the same position, on every replica.
func TestAcknowledgedCommandsSurviveLeaderChangesExactlyOnce(t *testing.T) {
	defer leaktest.Check(t)()
	// No snapshots: every replica's apply history is complete from the
	// first entry, so histories can be compared whole.
	c := newTestCluster(t, 5, func(cfg *Config) { cfg.SnapshotEntries = 1 << 40 })
	c.waitLeader()
	var mu sync.Mutex
	acked := map[uint64]bool{}
	var next atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var live sync.Map // raft.NodeID -> *Replica[uint64], for clients
	for id, r := range c.replicas {
		live.Store(id, r)
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			via := raft.NodeID(w%5 + 1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, ok := live.Load(via)
				if !ok {
					via = via%5 + 1
					continue
				}
				id := next.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := v.(*Replica[uint64]).Propose(ctx, add(id))
				cancel()
				if err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				} else {
					via = via%5 + 1
					time.Sleep(5 * time.Millisecond)
				}
			}
		}(w)
	}
	for k := 0; k < 2; k++ {
		time.Sleep(400 * time.Millisecond)
		lead := c.waitLeader()
		live.Delete(lead)
		c.stop(lead)
		time.Sleep(400 * time.Millisecond)
		c.start(lead, nil)
		live.Store(lead, c.replicas[lead])
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	// One more command through the leader marks the end: once a replica
	// applied it, it applied everything before it.
	lead := c.waitLeader()
	final := next.Add(1)
	c.propose(lead, final)
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 20 {
		t.Fatalf("only %d commands acknowledged: the workload did not run", len(acked))
	}
	var reference []uint64
	for id := raft.NodeID(1); id <= 5; id++ {
		deadline := time.Now().Add(20 * time.Second)
		var vals []uint64
		for {
			c.sms[id].mu.RLock()
			vals = append([]uint64(nil), c.sms[id].values...)
			c.sms[id].mu.RUnlock()
			if len(vals) > 0 && vals[len(vals)-1] == final || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		seen := map[uint64]int{}
		for _, v := range vals {
			seen[v]++
			if seen[v] > 1 {
				t.Fatalf("replica %d applied command %d twice", id, v)
			}
		}
		for v := range acked {
			if seen[v] != 1 {
				t.Fatalf("replica %d lost acknowledged command %d", id, v)
			}
		}
		if reference == nil {
			reference = vals
		} else if len(vals) != len(reference) {
			t.Fatalf("replica %d applied %d commands, replica 1 applied %d", id, len(vals), len(reference))
		} else {
			for i := range vals {
				if vals[i] != reference[i] {
					t.Fatalf("replica %d applied %d at position %d, replica 1 applied %d", id, vals[i], i, reference[i])
				}
			}
		}
	}
	c.stopAll()
}

// A proposal a follower forwarded to a leader that then died must not wait
// forever: once the term changes, its outcome is reported unknown (or its
// result, if the new leader committed it).
func TestForwardedProposalResolvesAfterLeaderDies(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	c.propose(lead, 1)
	var follower raft.NodeID = 1
	if follower == lead {
		follower = 2
	}
	c.stop(lead)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.replicas[follower].Propose(ctx, add(1))
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("forwarded proposal: got %v, want a result, ErrOutcomeUnknown or ErrNoLeader within the deadline", err)
	}
	c.stopAll()
}

// committedCluster starts three replicas and returns them once the leader
// has committed in its term, with a context for the test's waits.
func committedCluster(t *testing.T) (*testCluster, raft.NodeID, context.Context) {
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c.propose(lead, 1)
	return c, lead, ctx
}

// A Future's Done channel closes once its command applied, and Result then
// gives the command's result; before that Result says it is not known yet.
// An abandoned Future is never completed.
func TestFutureDoneResultAndAbandon(t *testing.T) {
	defer leaktest.Check(t)()
	c, lead, ctx := committedCluster(t)
	r := c.replicas[lead]

	f, err := r.ProposeAsync(ctx, add(4))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Done():
	case <-ctx.Done():
		t.Fatal("Done did not close within 10s")
	}
	if got, err := f.Result(); err != nil || got != 5 {
		t.Fatalf("Result after Done: got %d, %v; want 5, nil", got, err)
	}

	// Without a quorum nothing commits: the outcome stays unknown.
	for id := range c.replicas {
		if id != lead {
			c.stop(id)
		}
	}
	g, err := r.ProposeAsync(ctx, add(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Result(); !errors.Is(err, ErrNotDone) {
		t.Fatalf("Result before Done: got %v, want ErrNotDone", err)
	}
	g.Abandon()
	c.stop(lead)
	select {
	case <-g.Done():
		t.Fatal("an abandoned Future was completed (by Stop)")
	default:
	}
}

// ProposeNotify calls its callback once, with the outcome; Abandon while
// the outcome is pending means it is never called, and says so.
func TestProposeNotifyCallsBackOnceUnlessAbandoned(t *testing.T) {
	defer leaktest.Check(t)()
	c, lead, ctx := committedCluster(t)
	r := c.replicas[lead]

	type outcome struct {
		res uint64
		err error
	}
	got := make(chan outcome, 2)
	f, err := r.ProposeNotify(add(4), func(res uint64, err error) { got <- outcome{res, err} })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-got:
		if o.err != nil || o.res != 5 {
			t.Fatalf("notified of %d, %v; want 5, nil", o.res, o.err)
		}
	case <-ctx.Done():
		t.Fatal("no notification within 10s")
	}
	if f.Abandon() {
		t.Fatal("Abandon after the outcome says it was pending")
	}

	for id := range c.replicas {
		if id != lead {
			c.stop(id)
		}
	}
	g, err := r.ProposeNotify(add(2), func(res uint64, err error) { got <- outcome{res, err} })
	if err != nil {
		t.Fatal(err)
	}
	if !g.Abandon() {
		t.Fatal("Abandon without a quorum says the outcome was known")
	}
	h, err := r.ProposeNotify(add(3), func(res uint64, err error) { got <- outcome{res, err} })
	if err != nil {
		t.Fatal(err)
	}
	c.stop(lead) // fails h, not the abandoned g
	select {
	case o := <-got:
		if o.err == nil {
			t.Fatalf("notified of %d with no error after Stop", o.res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not notify the pending proposal")
	}
	if h.Abandon() {
		t.Fatal("Abandon after Stop says the outcome was pending")
	}
	select {
	case o := <-got:
		t.Fatalf("a second notification: %v (the abandoned proposal's, or one twice)", o)
	case <-time.After(100 * time.Millisecond):
	}
}

// ProposeNotify does not wait for room in the proposal queue: with no
// room it proposes nothing, says so, and keeps no waiter.
func TestProposeNotifyDoesNotWaitForTheQueue(t *testing.T) {
	r := &Replica[uint64]{cfg: Config{MaxEntryBytes: 1 << 10}, propc: make(chan proposal), waiters: map[uint64]*Future[uint64]{}}
	called := false
	f, err := r.ProposeNotify(add(1), func(uint64, error) { called = true })
	if !errors.Is(err, ErrQueueFull) || f != nil {
		t.Fatalf("ProposeNotify with the queue full: got %v, %v; want ErrQueueFull", f, err)
	}
	if len(r.waiters) != 0 || called {
		t.Fatalf("a refused proposal left %d waiters (notified: %v)", len(r.waiters), called)
	}
}

// Counters follow the replica without going through its loop: a leader
// was seen, and a committed proposal shows in Committed and Applied.
func TestCounters(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	before := c.replicas[lead].Counters()
	if before.LeaderChanges == 0 {
		t.Fatalf("counters after an election: %+v, want a leader change", before)
	}
	c.propose(lead, 3)
	after := c.replicas[lead].Counters()
	if after.Committed <= before.Committed || after.Applied <= before.Applied {
		t.Fatalf("counters before a proposal %+v, after %+v: want Committed and Applied to advance", before, after)
	}
	if after.Pending != 0 || after.Transport.MessagesSent == 0 {
		t.Fatalf("counters after the proposal applied: %+v, want nothing pending and messages sent", after)
	}
	c.stopAll()
}

// The lease is ElectionTicks-2 ticks less 10%, and Validate refuses lease
// reads when that leaves nothing.
func TestLeaseDurationAndItsConfig(t *testing.T) {
	if got, want := leaseDuration(30, 10*time.Millisecond), 252*time.Millisecond; got != want {
		t.Errorf("leaseDuration(30, 10ms) = %v, want %v", got, want)
	}
	cfg := Config{ID: 1, ClusterID: 1, Peers: map[raft.NodeID]string{1: "127.0.0.1:1"}, Store: NewMemoryLogStore(),
		ElectionTicks: 2, HeartbeatTicks: 1, LeaseReads: true}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "LeaseReads needs ElectionTicks of at least 3, not 2") {
		t.Errorf("Validate with lease reads and 2 election ticks: %v", err)
	}
	cfg.ElectionTicks = 3
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate with lease reads and 3 election ticks: %v", err)
	}
}

// heldSnapshots is a LogStore whose CreateSnapshot waits until release is
// closed, as a large snapshot's write and sync do.
type heldSnapshots struct {
	LogStore
	held    chan raft.Index
	release chan struct{}
}

func (s heldSnapshots) CreateSnapshot(i raft.Index, cs raft.ConfState, data []byte) error {
	select {
	case s.held <- i:
	default:
	}
	<-s.release
	return s.LogStore.CreateSnapshot(i, cs, data)
}

// Entries go on being applied, and proposals answered, while a snapshot is
// stored: its write and sync happen off the apply loop.
func TestApplyingGoesOnWhileASnapshotIsStored(t *testing.T) {
	defer leaktest.Check(t)()
	held, release := make(chan raft.Index, 8), make(chan struct{})
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotEntries = 20
		cfg.CompactionOverhead = 5
		cfg.Store = heldSnapshots{LogStore: cfg.Store, held: held, release: release}
	})
	lead := c.waitLeader()
	var total uint64
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.replicas[lead].Propose(ctx, add(1))
		cancel()
		if err != nil {
			close(release)
			t.Fatalf("proposal %d while a snapshot is being stored: %v", i, err)
		}
		total = res
	}
	select {
	case i := <-held:
		t.Logf("a snapshot at %d was being stored through %d proposals", i, total)
	default:
		close(release)
		t.Fatal("no snapshot was stored: the test did not exercise anything")
	}
	if snap, _ := c.stores[lead].Snapshot(); !snap.IsEmpty() {
		close(release)
		t.Fatalf("a snapshot at %d is in the store before its write finished", snap.Meta.Index)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if snap, _ := c.stores[lead].Snapshot(); !snap.IsEmpty() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held snapshot was not stored after its release")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.stopAll()
}

// capturing is a counter that takes its image in two steps: the write
// waits until release is closed, as a large image's encoding takes long.
type capturing struct {
	*counter
	captured chan capture
	release  chan struct{}
}

// capture is the state at a CaptureSnapshot: the total and the index of
// the last command applied.
type capture struct {
	total uint64
	index raft.Index
}

func (c *capturing) CaptureSnapshot() func(io.Writer) error {
	var img bytes.Buffer
	c.counter.Snapshot(&img)
	c.mu.RLock()
	at := capture{total: c.total, index: c.applied[len(c.applied)-1]}
	c.mu.RUnlock()
	select {
	case c.captured <- at:
	default:
	}
	return func(w io.Writer) error {
		<-c.release
		_, err := w.Write(img.Bytes())
		return err
	}
}

// With a SnapshotCapturer, applying goes on while the image is written,
// and the image stored is the state at its capture, not at its writing.
func TestApplyingGoesOnWhileASnapshotIsWritten(t *testing.T) {
	defer leaktest.Check(t)()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryLogStore()
	sm := &capturing{counter: &counter{}, captured: make(chan capture, 8), release: make(chan struct{})}
	r, err := Start[uint64](Config{ID: 1, ClusterID: 7, Peers: map[raft.NodeID]string{1: ln.Addr().String()}, Listener: ln, Store: store,
		TickInterval: 5 * time.Millisecond, ElectionTicks: 20, HeartbeatTicks: 2, SnapshotEntries: 20, CompactionOverhead: 5}, sm)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	released := false
	release := func() {
		if !released {
			released = true
			close(sm.release)
		}
	}
	defer release()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if l, _ := r.Leader(); l == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the single member did not become leader")
		}
	}
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.Propose(ctx, add(1))
		cancel()
		if err != nil {
			t.Fatalf("proposal %d while a snapshot is being written: %v", i, err)
		}
	}
	var at capture
	select {
	case at = <-sm.captured:
	default:
		t.Fatal("no snapshot was captured: the test did not exercise anything")
	}
	if snap, _ := store.Snapshot(); !snap.IsEmpty() {
		t.Fatalf("a snapshot at %d is stored before its image was written", snap.Meta.Index)
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, _ := store.Snapshot()
		if !snap.IsEmpty() {
			var got counter
			if err := got.Restore(bytes.NewReader(snap.Data)); err != nil {
				t.Fatal(err)
			}
			// In a single member every entry after the first (the
			// leader's no-op) is a command: the image must be labelled
			// with the index of the last one it holds.
			if got.total != at.total || snap.Meta.Index != at.index {
				t.Fatalf("stored image: total %d at index %d, want %d at %d (the state at its capture)", got.total, snap.Meta.Index, at.total, at.index)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the snapshot was not stored after its image was released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Stop()
}

// A replica restarted from a snapshot with the log behind it kept
// (CompactionOverhead) resumes after the snapshot: the entries the restored
// state holds are not applied again.
func TestRestartFromASnapshotDoesNotApplyItsEntriesAgain(t *testing.T) {
	defer leaktest.Check(t)()
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotEntries = 20 })
	lead := c.waitLeader()
	var total uint64
	for i := 0; i < 100; i++ {
		total = c.propose(lead, 1)
	}
	var f raft.NodeID = 1
	if f == lead {
		f = 2
	}
	c.waitTotal(f, total)
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, _ := c.stores[f].Snapshot()
		first, _ := c.stores[f].FirstIndex()
		if !snap.IsEmpty() && first < snap.Meta.Index {
			break // a snapshot with entries before it still in the log
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot with the log behind it: the test exercises nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.stop(f)
	c.start(f, nil)
	total = c.propose(lead, 1)
	c.waitTotal(f, total)
	if r := c.replicas[f]; r != nil {
		select {
		case <-r.Done():
			t.Fatalf("the restarted replica stopped: %v", r.Err())
		default:
		}
	}
	c.stopAll()
}
