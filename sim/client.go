package sim

import (
	"fmt"

	"github.com/lockstep/lockstep/raft"
)

type replyKind uint8

const (
	replyOK replyKind = iota + 1
	// replyNotLeader: the replica does not lead; hint names the leader it
	// knows of, if any.
	replyNotLeader
)

type reply struct {
	kind replyKind
	hint raft.NodeID
	res  Answer
}

// client is a simulated client: one operation at a time, sent to the
// replica it believes leads, retried on timeouts and redirects with the
// same request ID (so the state machine applies it once), and given up
// after ClientAttempts attempts, leaving its outcome unknown.
type client struct {
	w   *World
	idx int
	// probe clients are driven by the world (liveness probe, final reads):
	// they retry until answered and never start operations on their own.
	probe   bool
	nextReq uint64
	guess   raft.NodeID
	cur     *op // the outstanding operation, or nil
	attempt int
	// tries counts attempts of cur.
	tries int
	// seen is the last value read or written per key, used to build cas
	// operations that sometimes succeed.
	seen map[string]string
	// noRetry makes the client send each operation once.
	noRetry bool
	// onDone, if set, runs when cur completes or is given up.
	onDone func(*op)
}

func (w *World) newClient(probe bool) *client {
	c := &client{w: w, idx: len(w.clients), probe: probe, seen: map[string]string{}}
	c.guess = w.ids[w.rng.IntN(len(w.ids))]
	w.clients = append(w.clients, c)
	return c
}

func (w *World) key(i int) string { return fmt.Sprintf("k%d", i) }

// wake starts a new random operation.
func (c *client) wake() {
	w := c.w
	if c.cur != nil || c.probe || w.stopClients || w.done {
		return
	}
	key := w.key(w.rng.IntN(w.opt.Keys))
	c.nextReq++
	cmd := Command{ClientID: uint64(c.idx + 1), ReqID: c.nextReq, Key: key}
	switch p := w.rng.IntN(100); {
	case p < 35:
		cmd.Kind = OpPut
		cmd.Value = fmt.Sprintf("c%d.%d", c.idx, c.nextReq)
	case p < 65:
		cmd.Kind = OpGet
	case p < 85:
		cmd.Kind = OpCAS
		cmd.Expected = c.seen[key]
		cmd.Value = fmt.Sprintf("c%d.%d", c.idx, c.nextReq)
	default:
		cmd.Kind = OpDelete
	}
	c.begin(cmd)
}

// Submit makes client c (a probe-style scripted client) invoke cmd now;
// done runs when it completes or is given up. Used by scenarios.
func (c *client) submit(kind OpKind, key, value, expected string, to raft.NodeID, done func(*op)) {
	c.nextReq++
	cmd := Command{Kind: kind, ClientID: uint64(c.idx + 1), ReqID: c.nextReq, Key: key, Value: value, Expected: expected}
	if to != raft.None {
		c.guess = to
	}
	c.onDone = done
	c.begin(cmd)
}

func (c *client) begin(cmd Command) {
	c.cur = c.w.hist.invoke(c.idx, cmd)
	c.tries = 0
	c.w.trace.line(c.w, "client %d invokes %s", c.idx, describeCmd(cmd))
	c.send()
}

func (c *client) send() {
	w := c.w
	c.tries++
	c.attempt++
	to := c.guess
	if !w.Up(to) && w.rng.IntN(2) == 0 {
		to = c.next(to)
	}
	w.trace.mark(uint64(evToNode), uint64(c.idx), c.cur.cmd.ReqID, uint64(to))
	if w.rng.Float64() >= w.loss {
		w.schedule(&event{kind: evToNode, node: to, client: c.idx, req: c.cur.cmd.ReqID, attempt: c.attempt, cmd: c.cur.cmd}, w.delay())
	}
	w.schedule(&event{kind: evClientTimeout, client: c.idx, attempt: c.attempt}, Time(w.opt.ClientTimeout)*UnitsPerTick)
}

func (c *client) next(id raft.NodeID) raft.NodeID {
	return raft.NodeID(int(id)%len(c.w.ids) + 1)
}

func (c *client) onReply(e *event) {
	w := c.w
	if c.cur == nil || e.req != c.cur.cmd.ReqID || e.attempt != c.attempt {
		return
	}
	switch e.rep.kind {
	case replyOK:
		c.guess = e.node
		w.hist.complete(c.cur, e.rep.res)
		w.stats.OpsOK++
		w.trace.line(w, "client %d completes %s -> %+v", c.idx, describeCmd(c.cur.cmd), e.rep.res)
		w.trace.mark(uint64(evToClient), uint64(c.idx), c.cur.cmd.ReqID, hashBytes([]byte(e.rep.res.Value)))
		if c.cur.cmd.Kind == OpGet || c.cur.cmd.Kind == OpPut || (c.cur.cmd.Kind == OpCAS && e.rep.res.OK) {
			if c.cur.cmd.Kind == OpGet {
				c.seen[c.cur.cmd.Key] = e.rep.res.Value
			} else {
				c.seen[c.cur.cmd.Key] = c.cur.cmd.Value
			}
		}
		c.finish()
	case replyNotLeader:
		if e.rep.hint != raft.None {
			c.guess = e.rep.hint
		} else {
			c.guess = c.next(e.node)
		}
		if c.retriesLeft() {
			// Give an election a moment before asking again.
			c.attempt++ // the pending timeout is now stale
			att := c.attempt
			w.after(Time(1+w.rng.IntN(3))*UnitsPerTick, func() {
				if c.cur != nil && c.attempt == att {
					c.send()
				}
			})
		} else {
			c.giveUp()
		}
	}
}

func (c *client) retriesLeft() bool {
	if c.probe && !c.noRetry {
		return true
	}
	if c.noRetry {
		return false
	}
	return c.tries < c.w.opt.ClientAttempts
}

func (c *client) onTimeout(e *event) {
	if c.cur == nil || e.attempt != c.attempt {
		return
	}
	c.guess = c.next(c.guess)
	if c.retriesLeft() {
		c.send()
		return
	}
	c.giveUp()
}

// giveUp abandons the operation: for a write, whether it took effect is
// unknown and stays so in the history.
func (c *client) giveUp() {
	w := c.w
	w.stats.OpsUnknown++
	w.trace.line(w, "client %d gives up %s", c.idx, describeCmd(c.cur.cmd))
	w.trace.mark(uint64(evClientTimeout), uint64(c.idx), c.cur.cmd.ReqID)
	c.finish()
}

func (c *client) finish() {
	o := c.cur
	c.cur = nil
	c.attempt++
	if c.onDone != nil {
		f := c.onDone
		c.onDone = nil
		f(o)
	}
	if !c.probe {
		c.w.schedule(&event{kind: evClientWake, client: c.idx}, Time(c.w.rng.IntN(int(3*UnitsPerTick))))
	}
}

func describeCmd(c Command) string {
	switch c.Kind {
	case OpPut:
		return fmt.Sprintf("#%d.%d put %s=%s", c.ClientID, c.ReqID, c.Key, c.Value)
	case OpCAS:
		return fmt.Sprintf("#%d.%d cas %s %s->%s", c.ClientID, c.ReqID, c.Key, c.Expected, c.Value)
	case OpDelete:
		return fmt.Sprintf("#%d.%d delete %s", c.ClientID, c.ReqID, c.Key)
	case OpGet:
		return fmt.Sprintf("#%d.%d get %s", c.ClientID, c.ReqID, c.Key)
	}
	return fmt.Sprintf("#%d.%d %s", c.ClientID, c.ReqID, c.Kind)
}

// Call is an operation a scenario invokes through its own client.
type Call struct {
	op *op
	// Done: the client completed or gave up the operation; Answered: it
	// got an answer (Answer holds it).
	Done, Answered bool
	Answer         Answer
}

// Invoke sends one operation to replica to (or the client's guess, if
// None) from a fresh client. With retry it is retried until answered;
// otherwise it is sent once and given up at its timeout, its outcome
// unknown.
func (w *World) Invoke(to raft.NodeID, retry bool, kind OpKind, key, value, expected string) *Call {
	c := w.newClient(true)
	c.noRetry = !retry
	call := &Call{}
	c.submit(kind, key, value, expected, to, func(o *op) {
		call.Done, call.Answered, call.Answer = true, o.done, o.res
	})
	call.op = c.w.hist.ops[len(c.w.hist.ops)-1]
	return call
}

// Executed reports whether the call's command was executed by the log.
func (w *World) Executed(c *Call) bool {
	return w.chk.executed[reqKey{c.op.cmd.ClientID, c.op.cmd.ReqID}]
}
