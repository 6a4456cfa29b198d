package sim

import (
	"container/heap"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/anishathalye/porcupine"

	"github.com/lockstep/lockstep/raft"
)

// Time is virtual time in units; a raft tick lasts UnitsPerTick units, so
// that messages and disk writes can take less than a tick.
type Time int64

// UnitsPerTick is the length of one raft tick in virtual time units.
const UnitsPerTick Time = 10

// Options configure one simulated run. RandomOptions derives varied options
// from a seed; scenario tests write them by hand.
type Options struct {
	Seed uint64
	// Nodes is the number of voters (3 or 5).
	Nodes int
	// Clients is the number of workload clients issuing random operations;
	// Keys the number of keys they use.
	Clients int
	Keys    int
	// ElectionTicks and HeartbeatTicks go to raft.Config.
	ElectionTicks  int
	HeartbeatTicks int
	// MaxBytesPerMsg goes to raft.Config (0: raft's default).
	MaxBytesPerMsg uint64
	// FaultTicks is the length of the first phase, during which random
	// faults happen when Faults is set. Afterwards everything heals.
	FaultTicks int
	Faults     bool
	// MinDelay and MaxDelay bound a message's network delay (units).
	MinDelay, MaxDelay Time
	// Loss and Dup are the probabilities that a message is lost or
	// delivered twice, while faults are on.
	Loss, Dup float64
	// PersistMax bounds the time a Ready's disk write takes (units).
	PersistMax Time
	// SnapshotEvery is the number of applied entries between state machine
	// snapshots (0: never), after which the log is compacted.
	SnapshotEvery int
	// CompactEvery is the number of kv revisions between compactions the
	// leader proposes (0: never), so that kv's compaction of its history
	// runs under faults and in snapshots too.
	CompactEvery int
	// Forward makes followers pass client requests to the leader through
	// raft instead of redirecting the client.
	Forward bool
	// ClientTimeout is the ticks a client waits for an answer before trying
	// another replica; ClientAttempts the attempts before it gives up and
	// records the outcome as unknown.
	ClientTimeout  int
	ClientAttempts int
	// LivenessTicks bounds the ticks, once faults stop, within which a
	// leader must be elected and a new write must commit.
	LivenessTicks int
	// RealStorage puts package storage over vfs.MemFS behind every node
	// instead of the memory model; TornWrites lets a crash tear the last
	// unsynced write.
	RealStorage bool
	TornWrites  bool
	// LeaseReads makes the nodes answer reads from raft's clock-timed
	// leader lease (raft.ReadOnlyLeaseBased), on virtual time; Pauses adds
	// pause faults (a node stops for a while: no ticks, no messages, no
	// disk, while time goes on), which a lease timed by ticks would not
	// survive.
	LeaseReads, Pauses bool
	// Hooks inject test-only faults; the zero value injects none.
	Hooks Hooks
	// Trace, when set, receives a readable line per event.
	Trace io.Writer
}

// Hooks are test-only faults used to prove that the checker notices broken
// rules. None of them is reachable from production code.
type Hooks struct {
	// Deliver, if set, sees every message just before it is stepped and may
	// rewrite it; returning false drops it.
	Deliver func(w *World, m *raft.Message) bool
	// AfterPersist, if set, runs once a node's Ready is durable and before
	// anything else of it is done (a scenario may crash the node there).
	AfterPersist func(w *World, id raft.NodeID, rd *raft.Ready)
	// LossyPutEvery makes the state machine drop some acknowledged puts.
	LossyPutEvery int
	// LyingDiskTail makes each crash also forget this many synced entries.
	LyingDiskTail int
}

// RandomOptions derives a run's options from its seed: cluster size,
// timing, fault rates and snapshot frequency all vary between seeds.
func RandomOptions(seed uint64) Options {
	r := rand.New(rand.NewPCG(seed, 0x6f7074696f6e73))
	o := Options{
		Seed:           seed,
		Nodes:          3 + 2*r.IntN(2),
		Clients:        2 + r.IntN(4),
		Keys:           1 + r.IntN(4),
		ElectionTicks:  10,
		HeartbeatTicks: 1 + r.IntN(2),
		FaultTicks:     300 + r.IntN(300),
		Faults:         true,
		MinDelay:       1,
		MaxDelay:       Time(3 + r.IntN(25)),
		Loss:           []float64{0, 0.01, 0.05, 0.15}[r.IntN(4)],
		Dup:            []float64{0, 0.01, 0.05}[r.IntN(3)],
		PersistMax:     Time(r.IntN(12)),
		SnapshotEvery:  []int{0, 5, 20, 60}[r.IntN(4)],
		Forward:        r.IntN(2) == 0,
		ClientTimeout:  30,
		ClientAttempts: 1 + r.IntN(6),
		LivenessTicks:  300,
	}
	if r.IntN(2) == 0 {
		o.RealStorage = true
		o.TornWrites = r.IntN(2) == 0
	}
	if r.IntN(3) == 0 {
		// Tiny messages: one entry per append, many round trips.
		o.MaxBytesPerMsg = 1
	}
	// Drawn last, so that the options above stay what they were for each
	// seed before compaction existed.
	o.CompactEvery = []int{0, 8, 40}[r.IntN(3)]
	// And these after that, for the same reason.
	o.LeaseReads = r.IntN(2) == 0
	o.Pauses = r.IntN(2) == 0
	return o
}

func (o *Options) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Keys == 0 {
		o.Keys = 1
	}
	if o.ElectionTicks == 0 {
		o.ElectionTicks = 10
	}
	if o.HeartbeatTicks == 0 {
		o.HeartbeatTicks = 1
	}
	if o.MaxDelay < o.MinDelay {
		o.MaxDelay = o.MinDelay
	}
	if o.ClientTimeout == 0 {
		o.ClientTimeout = 30
	}
	if o.ClientAttempts == 0 {
		o.ClientAttempts = 3
	}
	if o.LivenessTicks == 0 {
		o.LivenessTicks = 300
	}
}

type evKind uint8

const (
	evTick evKind = iota + 1
	evDeliver
	evPersist
	evReport
	evToNode
	evToClient
	evClientTimeout
	evClientWake
	evFunc
)

// event is one thing that happens at a virtual time. Events at the same
// time run in the order they were scheduled (seq), so a run depends only on
// its seed.
type event struct {
	at   Time
	seq  uint64
	kind evKind
	node raft.NodeID
	inc  int // the incarnation of node the event belongs to
	msg  raft.Message
	ok   bool
	// Client traffic.
	client  int
	req     uint64
	attempt int
	cmd     Command
	rep     reply
	fn      func()
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// World is a simulated cluster: replicas running the real raft core, a
// network, disks, clients and a clock, all in one goroutine and all driven
// by one seed.
type World struct {
	opt   Options
	rng   *rand.Rand
	now   Time
	ticks int
	seq   uint64
	queue eventHeap

	ids   []raft.NodeID
	nodes []*replica // nodes[id-1]
	conf  raft.ConfState

	// cut[from][to] drops messages on that link (indices are node IDs).
	cut       [][]bool
	loss, dup float64

	clients []*client
	probe   *client
	hist    history

	chk   checker
	trace tracer

	nextTicket uint64
	// stopClients stops workload clients from starting new operations.
	stopClients bool
	done        bool
	failures    []string
	stats       Stats
	// linearizability is porcupine's verdict, once checked.
	linearizability porcupine.CheckResult
}

// Stats counts what happened in a run.
type Stats struct {
	Ticks, Events                  int
	MsgsSent, MsgsDropped, MsgsDup int
	Crashes, Partitions            int
	TornTails                      int
	// StaleCommits counts crashes after which the disk's commit index was
	// behind the one the node knew (see replica.hs).
	StaleCommits            int
	Leaders, SnapshotsTaken int
	SnapshotsSent           int
	// Compactions counts the kv compactions leaders proposed.
	Compactions int
	// Pauses counts pause faults.
	Pauses            int
	OpsOK, OpsUnknown int
}

// NewWorld builds a cluster from opt; nothing runs until Run, RunTicks or
// RunUntil.
func NewWorld(opt Options) *World {
	opt.defaults()
	w := &World{
		opt:  opt,
		rng:  rand.New(rand.NewPCG(opt.Seed, 0x776f726c64)),
		loss: opt.Loss,
		dup:  opt.Dup,
	}
	w.trace.w = opt.Trace
	w.trace.init()
	for i := 1; i <= opt.Nodes; i++ {
		w.ids = append(w.ids, raft.NodeID(i))
	}
	w.conf = raft.ConfState{Voters: append([]raft.NodeID(nil), w.ids...)}
	w.cut = make([][]bool, opt.Nodes+1)
	for i := range w.cut {
		w.cut[i] = make([]bool, opt.Nodes+1)
	}
	w.chk.init(w)
	for _, id := range w.ids {
		var d Disk
		if opt.RealStorage {
			sd, err := newStoreDisk(w.rng.Uint64(), w.conf, opt.TornWrites)
			if err != nil {
				panic(fmt.Sprintf("sim: creating the store of n%d: %v", id, err))
			}
			d = sd
		} else {
			md := newMemDisk(w.conf)
			if opt.Hooks.LyingDiskTail > 0 {
				md.lieTail = opt.Hooks.LyingDiskTail
			}
			d = md
		}
		r := &replica{w: w, id: id, disk: d}
		w.nodes = append(w.nodes, r)
		r.start()
	}
	for i := 0; i < opt.Clients; i++ {
		c := w.newClient(false)
		w.schedule(&event{kind: evClientWake, client: c.idx}, Time(w.rng.IntN(int(5*UnitsPerTick))))
	}
	w.probe = w.newClient(true)
	w.schedule(&event{kind: evTick}, UnitsPerTick)
	if opt.Faults {
		w.scheduleFault()
	}
	return w
}

func (w *World) node(id raft.NodeID) *replica { return w.nodes[id-1] }

// pausedTarget is the paused node an event would act on, if any. Ticks are
// not held back: a paused node misses them.
func (w *World) pausedTarget(e *event) *replica {
	var id raft.NodeID
	switch e.kind {
	case evDeliver:
		id = e.msg.To
	case evPersist, evReport, evToNode:
		id = e.node
	default:
		return nil
	}
	if r := w.node(id); r.up && r.pausedUntil > w.now {
		return r
	}
	return nil
}

// Pause stops a node for d: it handles no message, disk completion or
// request and counts no tick until then, while virtual time (its clock)
// goes on.
func (w *World) Pause(id raft.NodeID, d Time) {
	r := w.node(id)
	if !r.up {
		return
	}
	w.stats.Pauses++
	w.trace.line(w, "pause n%d for %d.%d ticks", id, d/UnitsPerTick, d%UnitsPerTick)
	w.trace.mark(0xc5, uint64(id), uint64(d))
	r.pausedUntil = max(r.pausedUntil, w.now+d)
}

func (w *World) schedule(e *event, after Time) {
	if after < 0 {
		after = 0
	}
	e.at = w.now + after
	w.seq++
	e.seq = w.seq
	heap.Push(&w.queue, e)
}

// after runs fn at now+d (virtual time).
func (w *World) after(d Time, fn func()) { w.schedule(&event{kind: evFunc, fn: fn}, d) }

// fail records a broken invariant and stops the run.
func (w *World) fail(format string, args ...any) {
	msg := fmt.Sprintf("tick %d: ", w.ticks) + fmt.Sprintf(format, args...)
	w.failures = append(w.failures, msg)
	w.trace.line(w, "FAIL %s", msg)
	w.done = true
}

// step runs the next event. It reports false when nothing is left.
func (w *World) step() bool {
	if w.queue.Len() == 0 || w.done {
		return false
	}
	e := heap.Pop(&w.queue).(*event)
	w.now = e.at
	w.stats.Events++
	if r := w.pausedTarget(e); r != nil {
		// The node is paused: what was to happen to it waits until it
		// resumes, in the order it would have happened.
		w.schedule(e, r.pausedUntil-w.now)
		return true
	}
	switch e.kind {
	case evTick:
		w.ticks++
		w.stats.Ticks = w.ticks
		w.trace.mark(uint64(evTick), uint64(w.ticks))
		for _, r := range w.nodes {
			if r.up && r.pausedUntil <= w.now {
				r.rn.Tick()
				r.drive()
			}
		}
		if w.ticks%25 == 0 {
			w.chk.checkLogs()
		}
		w.schedule(&event{kind: evTick}, UnitsPerTick)
	case evDeliver:
		w.deliver(e)
	case evPersist:
		r := w.node(e.node)
		if r.up && r.inc == e.inc {
			r.finishReady()
		}
	case evReport:
		r := w.node(e.node)
		if r.up && r.inc == e.inc {
			w.trace.line(w, "n%d report snapshot to n%d ok=%v", e.node, e.msg.To, e.ok)
			w.trace.mark(uint64(evReport), uint64(e.node), uint64(e.msg.To))
			r.rn.ReportSnapshot(e.msg.To, e.ok)
			r.drive()
		}
	case evToNode:
		w.node(e.node).onRequest(e)
	case evToClient:
		w.clients[e.client].onReply(e)
	case evClientTimeout:
		w.clients[e.client].onTimeout(e)
	case evClientWake:
		w.clients[e.client].wake()
	case evFunc:
		e.fn()
	}
	return true
}

// RunTicks runs the world for n more ticks (or until a failure).
func (w *World) RunTicks(n int) {
	end := w.ticks + n
	for !w.done && w.ticks < end && w.step() {
	}
}

// RunUntil runs until cond holds (checked after every event), a failure, or
// maxTicks more ticks; it reports whether cond held.
func (w *World) RunUntil(cond func() bool, maxTicks int) bool {
	end := w.ticks + maxTicks
	for !w.done && w.ticks < end {
		if cond() {
			return true
		}
		if !w.step() {
			break
		}
	}
	return cond()
}

// Failed reports whether an invariant broke.
func (w *World) Failed() bool { return len(w.failures) > 0 }

// Ticks returns the current virtual time in ticks.
func (w *World) Ticks() int { return w.ticks }

// --- the network ---

// send puts a message on the wire from its sender's current incarnation.
func (w *World) send(m raft.Message) {
	w.stats.MsgsSent++
	from := w.node(m.From)
	if m.Type == raft.MsgSnap {
		w.stats.SnapshotsSent++
	}
	if w.cut[m.From][m.To] || w.rng.Float64() < w.loss {
		w.drop(m, from.inc, "lost")
		return
	}
	copies := 1
	if w.dup > 0 && w.rng.Float64() < w.dup {
		copies = 2
		w.stats.MsgsDup++
	}
	for range copies {
		w.schedule(&event{kind: evDeliver, msg: m, node: m.From, inc: from.inc}, w.delay())
	}
}

func (w *World) delay() Time {
	return w.opt.MinDelay + Time(w.rng.IntN(int(w.opt.MaxDelay-w.opt.MinDelay)+1))
}

// drop loses a message. A lost snapshot is reported to its sender, as a
// transport would once the stream fails, so the leader can retry.
func (w *World) drop(m raft.Message, fromInc int, why string) {
	w.stats.MsgsDropped++
	w.trace.line(w, "drop(%s) %s", why, describe(m))
	w.trace.mark(uint64(evDeliver), 0, uint64(m.Type), uint64(m.From), uint64(m.To))
	if m.Type == raft.MsgSnap {
		w.schedule(&event{kind: evReport, node: m.From, inc: fromInc, msg: m, ok: false}, w.delay())
	}
}

func (w *World) deliver(e *event) {
	m := e.msg
	to := w.node(m.To)
	if !to.up {
		w.drop(m, e.inc, "down")
		return
	}
	if w.cut[m.From][m.To] {
		w.drop(m, e.inc, "cut")
		return
	}
	if h := w.opt.Hooks.Deliver; h != nil && !h(w, &m) {
		w.drop(m, e.inc, "hook")
		return
	}
	w.trace.line(w, "deliver %s", describe(m))
	w.trace.markMsg(&m)
	if err := to.rn.Step(m); err != nil && !isDropped(err) {
		w.fail("n%d refused %s: %v", m.To, describe(m), err)
		return
	}
	if m.Type == raft.MsgSnap {
		w.schedule(&event{kind: evReport, node: m.From, inc: e.inc, msg: m, ok: true}, w.delay())
	}
	to.drive()
}

// Cut drops messages from one node to another until healed.
func (w *World) Cut(from, to raft.NodeID) {
	w.cut[from][to] = true
	w.trace.line(w, "cut n%d->n%d", from, to)
	w.trace.mark(0xc0, uint64(from), uint64(to))
}

// Isolate cuts every link to and from id.
func (w *World) Isolate(id raft.NodeID) {
	for _, o := range w.ids {
		if o != id {
			w.Cut(id, o)
			w.Cut(o, id)
		}
	}
}

// Split cuts every link between the two groups (in both directions).
func (w *World) Split(a []raft.NodeID) {
	in := make([]bool, len(w.ids)+1)
	for _, id := range a {
		in[id] = true
	}
	for _, x := range w.ids {
		for _, y := range w.ids {
			if in[x] != in[y] {
				w.Cut(x, y)
			}
		}
	}
}

// HealNetwork removes every cut.
func (w *World) HealNetwork() {
	for i := range w.cut {
		clear(w.cut[i])
	}
	w.trace.line(w, "heal network")
	w.trace.mark(0xc1)
}

// Crash powers a node off: whatever it had not persisted is lost.
func (w *World) Crash(id raft.NodeID) {
	r := w.node(id)
	if !r.up {
		return
	}
	w.stats.Crashes++
	w.trace.line(w, "crash n%d", id)
	w.trace.mark(0xc2, uint64(id))
	r.crash()
}

// Restart starts a crashed node from what its disk kept.
func (w *World) Restart(id raft.NodeID) {
	r := w.node(id)
	if r.up {
		return
	}
	w.trace.line(w, "restart n%d", id)
	w.trace.mark(0xc3, uint64(id))
	r.start()
}

// Campaign makes a node start an election now.
func (w *World) Campaign(id raft.NodeID) {
	r := w.node(id)
	if r.up {
		r.rn.Campaign()
		r.drive()
	}
}

// Leader returns an up node that believes it leads in the highest term
// among such nodes, or None.
func (w *World) Leader() raft.NodeID {
	var best raft.NodeID
	var term raft.Term
	for _, r := range w.nodes {
		if r.up && r.role == raft.RoleLeader && r.term >= term {
			best, term = r.id, r.term
		}
	}
	return best
}

// Up reports whether a node is running.
func (w *World) Up(id raft.NodeID) bool { return w.node(id).up }

// --- random faults ---

func (w *World) scheduleFault() {
	w.after(Time(5+w.rng.IntN(40))*UnitsPerTick, w.randomFault)
}

func (w *World) randomFault() {
	if w.ticks >= w.opt.FaultTicks || w.stopClients {
		return
	}
	defer w.scheduleFault()
	n := len(w.ids)
	f := (n - 1) / 2
	pick := func() raft.NodeID { return w.ids[w.rng.IntN(n)] }
	heal := func(what string) Time {
		d := Time(5+w.rng.IntN(60)) * UnitsPerTick
		w.after(d, func() {
			if w.ticks < w.opt.FaultTicks {
				w.trace.line(w, "end of %s", what)
				w.HealNetwork()
			}
		})
		return d
	}
	if w.opt.Pauses && w.rng.IntN(4) == 0 {
		// Often the leader, whose lease a pause puts to the test.
		id := pick()
		if l := w.Leader(); l != raft.None && w.rng.IntN(2) == 0 {
			id = l
		}
		w.Pause(id, Time(1+w.rng.IntN(int(3*w.opt.ElectionTicks)))*UnitsPerTick+Time(w.rng.IntN(int(UnitsPerTick))))
		return
	}
	switch k := w.rng.IntN(10); k {
	case 0, 1:
		w.stats.Partitions++
		w.Isolate(pick())
		heal("isolation")
	case 2:
		w.stats.Partitions++
		perm := w.rng.Perm(n)
		var minority []raft.NodeID
		for _, i := range perm[:f] {
			minority = append(minority, w.ids[i])
		}
		w.Split(minority)
		heal("split")
	case 3:
		w.stats.Partitions++
		a, b := pick(), pick()
		if a != b {
			w.Cut(a, b)
			heal("one-way cut")
		}
	case 4, 5, 6:
		down := 0
		for _, r := range w.nodes {
			if !r.up {
				down++
			}
		}
		id := pick()
		if down < f && w.node(id).up {
			w.Crash(id)
			w.after(Time(1+w.rng.IntN(60))*UnitsPerTick, func() { w.Restart(id) })
		}
	case 7:
		// A flapping link: cut and restored every few ticks for a while.
		a, b := pick(), pick()
		if a == b {
			return
		}
		period := Time(1+w.rng.IntN(8)) * UnitsPerTick
		for i := Time(0); i < Time(2+w.rng.IntN(10)); i++ {
			on := i%2 == 0
			w.after(i*period, func() {
				if w.ticks < w.opt.FaultTicks {
					w.cut[a][b], w.cut[b][a] = on, on
					w.trace.mark(0xc4, uint64(a), uint64(b))
				}
			})
		}
	case 8:
		// A burst of heavy loss.
		w.loss = 0.3 + 0.4*w.rng.Float64()
		w.after(Time(2+w.rng.IntN(20))*UnitsPerTick, func() {
			if w.ticks < w.opt.FaultTicks {
				w.loss = w.opt.Loss
			}
		})
	case 9:
		w.HealNetwork()
	}
}

// healAll ends every fault: the network is whole and reliable (delays
// remain), every crashed node restarts.
func (w *World) healAll() {
	w.HealNetwork()
	w.loss, w.dup = 0, 0
	for _, id := range w.ids {
		w.Restart(id)
	}
}
