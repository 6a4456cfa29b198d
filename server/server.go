package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lockstep/lockstep/internal/h2grpc"
	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// APIVersion is the etcd API version the server reports in Status: the
// version whose semantics it implements, so that clients gating features on
// it behave as with etcd.
const APIVersion = "3.5.0"

// streamWorkers is how many goroutines serve requests (past it, each
// request gets its own): about the concurrency a busy member sees.
const streamWorkers = 512

// retryPause is the wait between two attempts of a request that surely did
// not apply (no leader yet, proposal dropped in an election).
const retryPause = 20 * time.Millisecond

// Server is one member of a lockstep cluster serving etcd's v3 gRPC API.
type Server struct {
	cfg     Config
	self    Member
	sm      *machine
	changes *changes
	lessor  *lessor
	r       *replica.Replica[kv.Result]
	grpc    *grpc.Server
	rpc     *h2grpc.Server // serves clients, handing most to grpc
	// gateway and splits serve etcd's HTTP/JSON API beside gRPC on
	// plaintext client listeners (nil with ClientTLS).
	gateway *gateway
	splits  []*splitListener

	// ctx ends when Stop begins: the server's own goroutines (publish,
	// lease expiry) use it for what they propose.
	ctx  context.Context
	stop context.CancelFunc
	// proposalsFailed counts proposals that failed for want of the
	// cluster (timeouts, lost leadership), not rejections by kv.
	proposalsFailed atomic.Uint64

	stopOnce sync.Once
	stopErr  error
	wg       sync.WaitGroup // the Serve, publish, lease and compactor goroutines
}

// metaFile records, in the data dir, which member of which cluster the log
// belongs to, so that a data dir started under another name or token is
// refused instead of silently joining the wrong cluster.
const metaFile = "lockstep-member.json"

type memberMeta struct {
	Name      string `json:"name"`
	MemberID  string `json:"member_id"`
	ClusterID string `json:"cluster_id"`
}

// HasData reports whether dir holds a member's data (it was started before).
func HasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, metaFile))
	return err == nil
}

func checkDataDir(dir string, self Member, clusterID uint64) error {
	want := memberMeta{Name: self.Name, MemberID: fmt.Sprintf("%x", uint64(self.ID)), ClusterID: fmt.Sprintf("%x", clusterID)}
	path := filepath.Join(dir, metaFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("server: creating the data dir: %w", err)
		}
		b, _ := json.MarshalIndent(want, "", "  ")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("server: writing %s: %w", path, err)
		}
		return os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("server: reading %s: %w", path, err)
	}
	var got memberMeta
	if err := json.Unmarshal(b, &got); err != nil {
		return fmt.Errorf("server: %s is corrupt: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("server: data dir %s belongs to member %q (ID %s) of cluster %s, not member %q (ID %s) of cluster %s",
			dir, got.Name, got.MemberID, got.ClusterID, want.Name, want.MemberID, want.ClusterID)
	}
	return nil
}

// Start opens (or creates) the member's log, starts its replica and serves
// the etcd API on the client listeners. It returns once serving; the
// cluster may still be electing a leader.
func Start(cfg Config) (s *Server, err error) {
	defer func() {
		if err != nil {
			// The listeners are the server's to close, even when it
			// could not start.
			for _, ln := range cfg.ClientListeners {
				ln.Close()
			}
			if cfg.PeerListener != nil {
				cfg.PeerListener.Close()
			}
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	self, _ := cfg.self()
	store := cfg.Store
	if store == nil {
		if err := checkDataDir(cfg.DataDir, self, cfg.ClusterID); err != nil {
			return nil, err
		}
		var err error
		if store, err = replica.OpenDiskStore(filepath.Join(cfg.DataDir, "log"), cfg.Logger); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	ch := newChanges()
	sm, err := newMachine(kv.Config{MaxTxnOps: cfg.MaxTxnOps}, ch)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	peers := make(map[raft.NodeID]string, len(cfg.Members))
	for _, m := range cfg.Members {
		peers[m.ID] = m.PeerAddr()
	}
	r, err := replica.Start[kv.Result](replica.Config{
		ID:              self.ID,
		ClusterID:       cfg.ClusterID,
		Peers:           peers,
		Listener:        cfg.PeerListener,
		Store:           store,
		TickInterval:    cfg.TickInterval,
		ElectionTicks:   cfg.ElectionTicks,
		SnapshotEntries: cfg.SnapshotEntries,
		ReadTimeout:     cfg.RequestTimeout,
		LeaseReads:      cfg.LeaseReads,
		TLS:             cfg.PeerTLS,
		// A command is a little larger than the request it encodes only
		// for tiny requests; MaxRequestBytes is checked before encoding.
		MaxEntryBytes: cfg.MaxRequestBytes + 4096,
		Logger:        cfg.Logger,
	}, sm)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	s = &Server{cfg: cfg, self: self, sm: sm, changes: ch, r: r}
	s.ctx, s.stop = context.WithCancel(context.Background())
	// gRPC-go serves the streams and the rarer methods, through
	// ServeHTTP; the KV methods take h2grpc's short path (fastpath.go).
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes+grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.StreamInterceptor(h2grpc.StreamInterceptor),
	)
	pb.RegisterKVServer(s.grpc, kvService{s})
	pb.RegisterWatchServer(s.grpc, watchService{s})
	s.lessor = newLessor(s)
	pb.RegisterLeaseServer(s.grpc, &leaseService{s: s})
	pb.RegisterMaintenanceServer(s.grpc, &maintenanceService{s: s})
	pb.RegisterClusterServer(s.grpc, &clusterService{s: s})
	if s.rpc, err = s.newRPCServer(); err != nil {
		s.stop()
		r.Stop()
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.ClientTLS == nil {
		// Plaintext: etcd's HTTP/JSON gateway shares each client port
		// with gRPC, as in etcd.
		if s.gateway, err = newGateway(s.ctx, cfg.ClientListeners[0].Addr().String()); err != nil {
			s.stop()
			s.rpc.Stop()
			r.Stop()
			return nil, fmt.Errorf("server: the HTTP/JSON gateway: %w", err)
		}
	}
	for _, ln := range cfg.ClientListeners {
		var grpcLn net.Listener = ln
		if s.gateway != nil {
			sl := newSplitListener(ln)
			s.splits = append(s.splits, sl)
			grpcLn = sl.grpc
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				// Stop closes the listeners under the gateway before the
				// gateway itself: an error then is the stop, not a failure.
				if err := s.gateway.serve(sl.gateway); err != nil && s.ctx.Err() == nil {
					cfg.Logger.Error("serving the HTTP/JSON gateway stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.rpc.Serve(grpcLn); err != nil && !errors.Is(err, h2grpc.ErrStopped) {
				cfg.Logger.Error("serving clients stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	s.wg.Add(2)
	if cfg.AutoCompaction.Mode != "" {
		s.wg.Add(1)
		go s.compactor()
	}
	go s.publish()
	go func() {
		defer s.wg.Done()
		s.lessor.run(s.ctx)
	}()
	cfg.Logger.Info("serving", "name", self.Name, "member", fmt.Sprintf("%x", uint64(self.ID)), "clients", cfg.AdvertiseClientURLs)
	return s, nil
}

// publish records this member's name and client URLs in the log (as etcd
// members publish their attributes), retrying until it succeeds or the
// server stops, unless the log already holds the same.
func (s *Server) publish() {
	defer s.wg.Done()
	want := memberAttrs{ID: uint64(s.self.ID), Name: s.self.Name, ClientURLs: s.cfg.AdvertiseClientURLs}
	ctx := s.ctx
	for ctx.Err() == nil {
		// Wait until the log is applied far enough to know what it holds.
		if err := s.r.Read(ctx, replica.ReadLinearizable, func() error { return nil }); err == nil {
			if got, ok := s.sm.published(want.ID); ok && got.Name == want.Name && slices.Equal(got.ClientURLs, want.ClientURLs) {
				return
			}
			if _, err := s.proposeEntry(ctx, encodePublish(want)); err == nil {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops serving (closing the client listeners and open streams),
// stops the replica and closes the log. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stop()
		s.rpc.Stop()
		s.grpc.Stop()
		if s.gateway != nil {
			s.gateway.close()
		}
		for _, sl := range s.splits {
			sl.Close()
		}
		s.wg.Wait()
		s.lessor.close()
		if err := s.r.Stop(); err != nil && !errors.Is(err, replica.ErrStopped) {
			s.stopErr = err
		}
	})
	return s.stopErr
}

// Done is closed when the replica stops, by Stop or after a fatal error
// (a disk error): the server can no longer serve and should be stopped.
func (s *Server) Done() <-chan struct{} { return s.r.Done() }

// Err says why the replica stopped (nil while it runs).
func (s *Server) Err() error { return s.r.Err() }

// ID returns this member's ID.
func (s *Server) ID() raft.NodeID { return s.self.ID }

// Name returns this member's name.
func (s *Server) Name() string { return s.self.Name }

// Leader returns the leader this member knows of (raft.None if none).
func (s *Server) Leader() raft.NodeID {
	l, _ := s.r.Leader()
	return l
}

// ClientURLs returns the URLs the server advertises to clients.
func (s *Server) ClientURLs() []string { return slices.Clone(s.cfg.AdvertiseClientURLs) }

func (s *Server) header(rev int64) *pb.ResponseHeader {
	_, term := s.r.Leader()
	return &pb.ResponseHeader{
		ClusterId: s.cfg.ClusterID,
		MemberId:  uint64(s.self.ID),
		Revision:  rev,
		RaftTerm:  uint64(term),
	}
}

// propose replicates a kv command and returns its result, or the etcd
// error for its rejection or failure.
func (s *Server) propose(ctx context.Context, c kv.Command) (kv.Result, error) {
	data, err := s.encodeCommand(c)
	if err != nil {
		return kv.Result{}, err
	}
	res, err := s.proposeEntry(ctx, data)
	if err != nil {
		return res, err
	}
	if err := s.result(ctx, c, res); err != nil {
		return kv.Result{}, err
	}
	return res, nil
}

// result is the error for c's applied result, nil if it is one to answer
// with: kv's rejection as its etcd error, or INTERNAL for another
// command's result.
func (s *Server) result(ctx context.Context, c kv.Command, res kv.Result) error {
	if res.Err != nil {
		return toGRPC(ctx, res.Err, false)
	}
	if !answers(c, res) {
		// The replica routed another command's result here. Say so rather
		// than hand the handler a response it cannot use.
		s.cfg.Logger.Error("a proposal got the result of another command", "member", s.self.Name)
		return status.Error(codes.Internal, "lockstep: the result applied for this request belongs to another command")
	}
	return nil
}

// encodeCommand encodes a kv command as a log entry's data.
func (s *Server) encodeCommand(c kv.Command) ([]byte, error) {
	// A put's encoding is its key and value and a few bytes more: sized
	// so, it is written without growing the buffer.
	size := 64
	if c.Put != nil {
		size += len(c.Put.Key) + len(c.Put.Value)
	}
	data, err := kv.AppendCommand(append(make([]byte, 0, size), tagKV), c)
	if err != nil {
		return nil, errGRPCBadRequest
	}
	return data, nil
}

// answers reports whether res has the response field c's kind produces.
func answers(c kv.Command, res kv.Result) bool {
	switch {
	case c.Put != nil:
		return res.Put != nil
	case c.DeleteRange != nil:
		return res.DeleteRange != nil
	case c.Txn != nil:
		return res.Txn != nil
	case c.Compact != nil:
		return res.Compact != nil
	case c.LeaseGrant != nil:
		return res.LeaseGrant != nil
	case c.LeaseRevoke != nil:
		return res.LeaseRevoke != nil
	}
	return false
}

// proposeEntry proposes data, retrying while the outcome is surely "not
// applied" (no leader, dropped in an election) until RequestTimeout. It
// never retries a proposal that may have applied.
//
// The timeout is a timer beside the request's context rather than a context
// derived from it: deriving one registers a child with the stream's context
// on every request, which showed in the leader's profile. The wait for room
// in the proposal queue (back-pressure) is bounded by ctx alone.
func (s *Server) proposeEntry(ctx context.Context, data []byte) (kv.Result, error) {
	return s.proposeEntryWithin(ctx, data, s.cfg.RequestTimeout, nil)
}

// proposeEntryWithin is proposeEntry with timeout in place of
// RequestTimeout, for a proposal already tried: after, if not nil, is the
// outcome of that attempt ("not applied"), and the first attempt here
// waits retryPause as a retry does.
func (s *Server) proposeEntryWithin(ctx context.Context, data []byte, timeout time.Duration, after error) (kv.Result, error) {
	res, err := s.proposeEntryRetrying(ctx, data, timeout, after)
	if err != nil {
		s.proposalsFailed.Add(1)
	}
	return res, err
}

// timers are proposeEntryRetrying's, reused: a timer and its channel were
// two of a put's allocations. A timer goes back stopped and drained.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// proposeEntryRetrying is proposeEntryWithin without the failure count.
func (s *Server) proposeEntryRetrying(ctx context.Context, data []byte, timeout time.Duration, after error) (kv.Result, error) {
	timer := timers.Get().(*time.Timer)
	timer.Reset(timeout)
	defer func() {
		if !timer.Stop() {
			// Fired: with Go 1.23+ timers nothing is left to receive,
			// but a main module on older semantics leaves the value
			// in the channel, where it would end the next call at once.
			select {
			case <-timer.C:
			default:
			}
		}
		timers.Put(timer)
	}()
	for err := after; ; {
		if err != nil {
			// The last attempt surely did not apply: pause, then retry.
			if !retryable(err) {
				return kv.Result{}, toGRPC(ctx, err, false)
			}
			pause := time.NewTimer(retryPause)
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
				return kv.Result{}, toGRPC(ctx, ctx.Err(), false)
			case <-timer.C:
				pause.Stop()
				return kv.Result{}, toGRPC(ctx, err, true)
			}
		}
		var f *replica.Future[kv.Result]
		if f, err = s.r.ProposeAsync(ctx, data); err != nil {
			continue
		}
		select {
		case <-f.Done():
			var res kv.Result
			if res, err = f.Result(); err == nil {
				return res, nil
			}
		case <-ctx.Done():
			f.Abandon()
			return kv.Result{}, toGRPC(ctx, ctx.Err(), false)
		case <-timer.C:
			f.Abandon()
			return kv.Result{}, rpctypes.ErrGRPCTimeout
		}
	}
}

// retryable reports whether a proposal's error says it surely did not
// apply and may be tried again.
func retryable(err error) bool {
	return errors.Is(err, replica.ErrNoLeader) || errors.Is(err, replica.ErrProposalDropped)
}

// read runs q once this member's state is current enough: linearizable
// (ReadIndex) unless serializable.
func (s *Server) read(ctx context.Context, serializable bool, q func() error) error {
	if serializable {
		return toGRPC(ctx, q(), false)
	}
	// No context.WithTimeout per read: it is a good part of a read's cost.
	// The replica bounds one attempt (Config.ReadTimeout is RequestTimeout);
	// the deadline here bounds the retries after ErrNoLeader.
	deadline := time.Now().Add(s.cfg.RequestTimeout)
	for {
		err := s.r.Read(ctx, replica.ReadLinearizable, q)
		if err == nil || !errors.Is(err, replica.ErrNoLeader) {
			return toGRPC(ctx, err, false)
		}
		wait := min(retryPause, time.Until(deadline))
		if wait <= 0 {
			return toGRPC(ctx, err, true)
		}
		if !sleepCtx(ctx, wait) {
			return toGRPC(ctx, ctx.Err(), false)
		}
	}
}

// sleepCtx pauses for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
