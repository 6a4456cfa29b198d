package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/raft"
)

// Leases. kv records leases and their keys but has no clock: the leader
// keeps each lease's deadline in memory and proposes a LeaseRevoke when it
// passes. Keep-alives move a deadline, so they must reach the leader: a
// follower forwards them (and TimeToLive) to the leader's published client
// URL. A member that becomes leader restarts every deadline at a full TTL,
// as etcd does, since it cannot know the keep-alives its predecessor saw.
const (
	// MinLeaseTTL is the shortest TTL granted, in seconds: well above the
	// time a deposed leader takes to notice (CheckQuorum steps it down
	// within an election timeout), so that it cannot expire a lease that
	// its successor is keeping alive.
	MinLeaseTTL = 2
	// leaseCheckInterval is how often the leader looks for expired leases.
	leaseCheckInterval = 100 * time.Millisecond
	// forwardedKey marks a request a follower forwarded, so that a member
	// that lost leadership meanwhile does not forward it again.
	forwardedKey = "lockstep-forwarded"
)

// lessor is the leader's clock for leases.
type lessor struct {
	s *Server

	mu       sync.Mutex // guards leading, deadline, conns
	leading  bool
	deadline map[int64]time.Time
	// conns are client connections to other members, by address, for
	// forwarding keep-alives to the leader.
	conns map[string]*grpc.ClientConn
}

func newLessor(s *Server) *lessor {
	return &lessor{s: s, deadline: map[int64]time.Time{}, conns: map[string]*grpc.ClientConn{}}
}

func (l *lessor) isLeader() bool { return l.s.Leader() == l.s.self.ID }

// run expires leases while this member leads, until runCtx ends.
func (l *lessor) run(runCtx context.Context) {
	t := time.NewTicker(leaseCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-runCtx.Done():
			return
		case <-t.C:
		}
		for _, id := range l.expired(time.Now()) {
			ctx, cancel := context.WithTimeout(runCtx, l.s.cfg.RequestTimeout)
			_, err := l.s.propose(ctx, kv.Command{LeaseRevoke: &kv.LeaseRevokeRequest{ID: id}})
			cancel()
			if err == nil || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
				l.forget(id)
			}
		}
	}
}

// expired reconciles the deadlines with kv's leases and returns the leases
// past their deadline, if this member leads.
func (l *lessor) expired(now time.Time) []int64 {
	leading := l.isLeader()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !leading {
		l.leading = false
		clear(l.deadline)
		return nil
	}
	if !l.leading {
		// New leader: every lease gets a full TTL.
		l.leading = true
		clear(l.deadline)
	}
	leases := l.s.sm.kv.Leases()
	live := make(map[int64]bool, len(leases))
	var out []int64
	for _, ls := range leases {
		live[ls.ID] = true
		d, ok := l.deadline[ls.ID]
		if !ok {
			l.deadline[ls.ID] = now.Add(ttlDuration(ls.TTL))
			continue
		}
		if now.After(d) {
			out = append(out, ls.ID)
		}
	}
	for id := range l.deadline {
		if !live[id] {
			delete(l.deadline, id)
		}
	}
	return out
}

func ttlDuration(ttl int64) time.Duration {
	return time.Duration(min(ttl, int64(kv.MaxLeaseTTL))) * time.Second
}

func (l *lessor) forget(id int64) {
	l.mu.Lock()
	delete(l.deadline, id)
	l.mu.Unlock()
}

// renew restarts a lease's deadline on the leader and returns its TTL, 0 if
// there is no such lease.
func (l *lessor) renew(ctx context.Context, id int64) (int64, error) {
	ls, err := l.s.sm.kv.Lease(id)
	if err != nil {
		// The grant may have applied elsewhere first.
		if rerr := l.s.read(ctx, false, func() error { return nil }); rerr != nil {
			return 0, rerr
		}
		if ls, err = l.s.sm.kv.Lease(id); err != nil {
			return 0, nil
		}
	}
	l.mu.Lock()
	if l.leading {
		l.deadline[id] = time.Now().Add(ttlDuration(ls.TTL))
	}
	l.mu.Unlock()
	return ls.TTL, nil
}

// remaining returns the seconds left on a lease, as the leader sees it.
func (l *lessor) remaining(id, ttl int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.deadline[id]
	if !ok {
		return ttl
	}
	return max(0, int64(time.Until(d).Round(time.Second)/time.Second))
}

// leaderConn returns a client connection to the current leader, or an
// error if there is none or this member leads (or the request was already
// forwarded once).
func (l *lessor) leaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	var lead raft.NodeID
	for {
		if lead = l.s.Leader(); lead != raft.None {
			break
		}
		if !sleepCtx(ctx, retryPause) {
			return nil, rpctypes.ErrGRPCNoLeader
		}
	}
	a, ok := l.s.sm.published(uint64(lead))
	if !ok || len(a.ClientURLs) == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	addr, err := ParseURL(a.ClientURLs[0])
	if err != nil {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[addr]; c != nil {
		return c, nil
	}
	if len(l.conns) >= maxMembers {
		for k, c := range l.conns {
			c.Close()
			delete(l.conns, k)
		}
	}
	creds := insecure.NewCredentials()
	if l.s.cfg.ForwardTLS != nil {
		creds = credentials.NewTLS(l.s.cfg.ForwardTLS)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	l.conns[addr] = c
	return c, nil
}

func (l *lessor) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.conns {
		c.Close()
		delete(l.conns, k)
	}
}

func forwardCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forwardedKey, "1")
}

// leaseService implements etcd's Lease service.
type leaseService struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (ls *leaseService) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > kv.MaxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	if r.ID < 0 {
		return nil, errGRPCBadRequest
	}
	ttl := max(r.TTL, MinLeaseTTL)
	for tries := 0; ; tries++ {
		id := r.ID
		if id == 0 {
			// The server picks the ID before proposing, so the command is
			// deterministic; a collision is rejected and retried.
			id = rand.Int64N(1<<62) + 1
		}
		res, err := ls.s.propose(ctx, kv.Command{LeaseGrant: &kv.LeaseGrantRequest{ID: id, TTL: ttl}})
		if errors.Is(err, rpctypes.ErrGRPCLeaseExist) && r.ID == 0 && tries < 8 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &pb.LeaseGrantResponse{Header: ls.s.header(res.LeaseGrant.Revision), ID: res.LeaseGrant.ID, TTL: res.LeaseGrant.TTL}, nil
	}
}

func (ls *leaseService) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	res, err := ls.s.propose(ctx, kv.Command{LeaseRevoke: &kv.LeaseRevokeRequest{ID: r.ID}})
	if err != nil {
		return nil, err
	}
	ls.s.lessor.forget(r.ID)
	return &pb.LeaseRevokeResponse{Header: ls.s.header(res.LeaseRevoke.Revision)}, nil
}

func (ls *leaseService) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	// A follower forwards this stream's keep-alives to the leader over one
	// stream of its own, opened at the first and kept while the leader
	// stays the same.
	var fwd keepAliveForwarder
	defer fwd.close()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ttl, err := ls.keepAlive(stream.Context(), req.ID, &fwd)
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.LeaseKeepAliveResponse{Header: ls.s.header(ls.s.sm.kv.Revision()), ID: req.ID, TTL: ttl}); err != nil {
			return err
		}
	}
}

// keepAliveForwarder is a follower's keep-alive stream to the leader.
type keepAliveForwarder struct {
	conn   *grpc.ClientConn // the leader's, nil when no stream is open
	st     pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

func (f *keepAliveForwarder) close() {
	if f.conn != nil {
		f.cancel()
		*f = keepAliveForwarder{}
	}
}

// forward sends one keep-alive over the stream to conn (opening it on
// streamCtx if need be) and returns the leader's answer; ctx bounds the
// wait. After an error the stream is closed.
func (f *keepAliveForwarder) forward(streamCtx, ctx context.Context, conn *grpc.ClientConn, id int64) (int64, error) {
	if f.conn != conn {
		f.close()
		sctx, cancel := context.WithCancel(forwardCtx(streamCtx))
		st, err := pb.NewLeaseClient(conn).LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return 0, err
		}
		*f = keepAliveForwarder{conn: conn, st: st, cancel: cancel}
	}
	// Past ctx's deadline, closing the stream ends a Recv that waits.
	stop := context.AfterFunc(ctx, f.cancel)
	err := f.st.Send(&pb.LeaseKeepAliveRequest{ID: id})
	var resp *pb.LeaseKeepAliveResponse
	if err == nil {
		resp, err = f.st.Recv()
	}
	if !stop() {
		// ctx ended and closed the stream, perhaps just after the answer
		// came: the answer stands, the stream does not.
		defer f.close()
	}
	if err == nil && resp.ID != id {
		err = fmt.Errorf("server: forwarded keep-alive of lease %d answered for lease %d", id, resp.ID)
	}
	if err != nil {
		f.close()
		return 0, err
	}
	return resp.TTL, nil
}

func (ls *leaseService) keepAlive(streamCtx context.Context, id int64, fwd *keepAliveForwarder) (int64, error) {
	ctx, cancel := context.WithTimeout(streamCtx, ls.s.cfg.RequestTimeout)
	defer cancel()
	for {
		if ls.s.lessor.isLeader() {
			fwd.close()
			return ls.s.lessor.renew(ctx, id)
		}
		conn, err := ls.s.lessor.leaderConn(ctx)
		if err != nil {
			return 0, err
		}
		ttl, err := fwd.forward(streamCtx, ctx, conn, id)
		if err == nil {
			return ttl, nil
		}
		// The leader changed or is unreachable: look again.
		if !sleepCtx(ctx, retryPause) {
			return 0, rpctypes.ErrGRPCTimeout
		}
	}
}

func (ls *leaseService) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if !ls.s.lessor.isLeader() {
		conn, err := ls.s.lessor.leaderConn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := pb.NewLeaseClient(conn).LeaseTimeToLive(forwardCtx(ctx), r)
		if err != nil {
			return nil, err
		}
		resp.Header = ls.s.header(resp.Header.GetRevision())
		return resp, nil
	}
	if err := ls.s.read(ctx, false, func() error { return nil }); err != nil {
		return nil, err
	}
	l, err := ls.s.sm.kv.Lease(r.ID)
	if err != nil {
		// etcd answers a missing lease with TTL -1, not an error.
		return &pb.LeaseTimeToLiveResponse{Header: ls.s.header(ls.s.sm.kv.Revision()), ID: r.ID, TTL: -1}, nil
	}
	resp := &pb.LeaseTimeToLiveResponse{
		Header:     ls.s.header(ls.s.sm.kv.Revision()),
		ID:         r.ID,
		TTL:        ls.s.lessor.remaining(r.ID, l.TTL),
		GrantedTTL: l.TTL,
	}
	if r.Keys {
		resp.Keys = l.Keys
	}
	return resp, nil
}

func (ls *leaseService) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	if err := ls.s.read(ctx, false, func() error { return nil }); err != nil {
		return nil, err
	}
	resp := &pb.LeaseLeasesResponse{Header: ls.s.header(ls.s.sm.kv.Revision())}
	for _, l := range ls.s.sm.kv.Leases() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: l.ID})
	}
	return resp, nil
}
