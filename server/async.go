package server

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/lockstep/lockstep/internal/h2grpc"
	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/replica"
)

// asyncPut, asyncDeleteRange and asyncTxn are the KV methods that write,
// on h2grpc's Async path: no goroutine waits for the proposal; its outcome
// answers the call (see proposeAsync). Each answers as its method of
// kvService would.
func (k kvService) asyncPut(ctx context.Context, r *pb.PutRequest, call h2grpc.Call) {
	if k.tooLarge(r) {
		call.Answer(nil, rpctypes.ErrGRPCRequestTooLarge)
		return
	}
	req, err := k.s.putFromPB(r)
	if err != nil {
		call.Answer(nil, err)
		return
	}
	k.s.proposeAsync(ctx, kv.Command{Put: req}, call, func(res kv.Result) h2grpc.Message { return k.s.putToPB(res.Put) })
}

func (k kvService) asyncDeleteRange(ctx context.Context, r *pb.DeleteRangeRequest, call h2grpc.Call) {
	if k.tooLarge(r) {
		call.Answer(nil, rpctypes.ErrGRPCRequestTooLarge)
		return
	}
	req, err := k.s.deleteFromPB(r)
	if err != nil {
		call.Answer(nil, err)
		return
	}
	k.s.proposeAsync(ctx, kv.Command{DeleteRange: req}, call, func(res kv.Result) h2grpc.Message { return k.s.deleteToPB(res.DeleteRange) })
}

// asyncTxn serves a txn that cannot write as a read, on a goroutine (see
// Txn).
func (k kvService) asyncTxn(ctx context.Context, r *pb.TxnRequest, call h2grpc.Call) {
	if k.tooLarge(r) {
		call.Answer(nil, rpctypes.ErrGRPCRequestTooLarge)
		return
	}
	req, err := k.s.txnFromPB(r, 1)
	if err != nil {
		call.Answer(nil, err)
		return
	}
	if kv.TxnIsReadOnly(req) {
		call.Continue(func() (h2grpc.Message, error) {
			resp, err := k.readTxn(ctx, r, req)
			if err != nil {
				return nil, err
			}
			return resp, nil
		})
		return
	}
	k.s.proposeAsync(ctx, kv.Command{Txn: req}, call, func(res kv.Result) h2grpc.Message { return k.s.txnToPB(res.Txn) })
}

// asyncProposal is one proposal of proposeAsync: whichever of its outcome
// and its timeout comes first answers the call.
type asyncProposal struct {
	s      *Server
	ctx    context.Context
	c      kv.Command
	data   []byte
	call   h2grpc.Call
	toPB   func(kv.Result) h2grpc.Message
	start  time.Time
	timer  *time.Timer
	client bool // the timer is the client's deadline, before RequestTimeout

	mu       sync.Mutex
	f        *replica.Future[kv.Result] // nil until ProposeNotify returns
	answered bool
}

// proposeAsync is propose for an h2grpc.Async call: it answers call with
// toPB of the result, or with the error propose would return. The outcome
// arrives on the replica's goroutine, which answers without waiting,
// unless the answer may be large (see small). A proposal that surely did
// not apply (no leader, dropped in an election) is retried as proposeEntry
// does, on a goroutine of h2grpc's (Continue), within what is left of
// RequestTimeout; so is one that finds the proposal queue full, which the
// connection's reader must not wait for (it would stop reading the
// client's other streams).
//
// Nothing watches ctx (that would cost a registration per call): the
// proposal is given up at the client's deadline if it comes before
// RequestTimeout, but a call the client cancels holds its place until the
// outcome or RequestTimeout.
func (s *Server) proposeAsync(ctx context.Context, c kv.Command, call h2grpc.Call, toPB func(kv.Result) h2grpc.Message) {
	data, err := s.encodeCommand(c)
	if err != nil {
		call.Answer(nil, err)
		return
	}
	p := &asyncProposal{s: s, ctx: ctx, c: c, data: data, call: call, toPB: toPB, start: time.Now()}
	wait := s.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left < wait {
			wait, p.client = left, true
		}
	}
	// The timer exists before the proposal: the outcome may come before
	// ProposeNotify returns, and stops it.
	p.timer = time.AfterFunc(wait, p.expire)
	f, err := s.r.ProposeNotify(data, p.done)
	if err != nil {
		if _, ok := p.claim(); ok {
			p.timer.Stop()
			p.fail(err)
		}
		return
	}
	p.mu.Lock()
	p.f = f
	answered := p.answered
	p.mu.Unlock()
	if answered {
		// By the outcome, and Abandon does nothing; or by the timer,
		// which could not abandon a Future it did not have yet.
		f.Abandon()
	}
}

// claim reports whether the caller answers the call: the first to ask, of
// the outcome, the timer and a proposal that failed at once. It returns
// the Future as far as it is known.
func (p *asyncProposal) claim() (*replica.Future[kv.Result], bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answered {
		return nil, false
	}
	p.answered = true
	return p.f, true
}

// done receives the proposal's outcome, on the replica's goroutine.
func (p *asyncProposal) done(res kv.Result, err error) {
	if _, ok := p.claim(); !ok {
		return
	}
	p.timer.Stop()
	if err != nil {
		p.fail(err)
		return
	}
	if p.ctx.Err() != nil {
		// The call ended first (the client gave up), and the answer will
		// be dropped: failed, as the waiting path counted it.
		p.s.proposalsFailed.Add(1)
	}
	if err := p.s.result(p.ctx, p.c, res); err != nil {
		p.call.Answer(nil, err)
		return
	}
	if !small(res) {
		// Converted and encoded on a worker: the apply loop must not
		// wait for a result as large as the keyspace.
		p.call.Continue(func() (h2grpc.Message, error) { return p.toPB(res), nil })
		return
	}
	p.call.Answer(p.toPB(res), nil)
}

// small reports whether converting and encoding res costs little: it
// carries no key-values but a put's previous one (as large as a request).
// A delete's previous key-values and a txn's ranges have no bound.
func small(res kv.Result) bool {
	switch {
	case res.DeleteRange != nil:
		return len(res.DeleteRange.PrevKvs) == 0
	case res.Txn != nil:
		return smallTxn(res.Txn)
	}
	return true
}

func smallTxn(t *kv.TxnResponse) bool {
	for _, op := range t.Responses {
		switch {
		case op.Range != nil, op.DeleteRange != nil && len(op.DeleteRange.PrevKvs) > 0:
			return false
		case op.Txn != nil && !smallTxn(op.Txn):
			return false
		}
	}
	return true
}

// fail answers a proposal that failed with first, or retries it: on a
// worker, where a full proposal queue is waited for.
func (p *asyncProposal) fail(first error) {
	if errors.Is(first, replica.ErrQueueFull) {
		first = nil // not an attempt: no pause before the next
	} else if !retryable(first) {
		p.s.proposalsFailed.Add(1)
		p.call.Answer(nil, toGRPC(p.ctx, first, false))
		return
	}
	left := p.s.cfg.RequestTimeout - time.Since(p.start)
	p.call.Continue(func() (h2grpc.Message, error) {
		res, err := p.s.proposeEntryWithin(p.ctx, p.data, left, first)
		if err != nil {
			return nil, err
		}
		if err := p.s.result(p.ctx, p.c, res); err != nil {
			return nil, err
		}
		return p.toPB(res), nil
	})
}

// expire answers a proposal whose outcome did not come by the client's
// deadline or within RequestTimeout, as proposeEntry does.
func (p *asyncProposal) expire() {
	f, ok := p.claim()
	if !ok {
		return
	}
	if f != nil {
		f.Abandon()
	}
	p.s.proposalsFailed.Add(1)
	if p.client {
		p.call.Answer(nil, rpctypes.ErrGRPCDeadlineExceeded)
		return
	}
	p.call.Answer(nil, rpctypes.ErrGRPCTimeout)
}
