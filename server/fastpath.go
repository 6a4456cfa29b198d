package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lockstep/lockstep/internal/h2grpc"
)

// newRPCServer returns the server that answers clients: the KV methods,
// which carry nearly all of a busy member's requests, on h2grpc's short
// path, and the rest (watches, leases, maintenance, cluster) through
// gRPC-go. In internal/h2grpc's BenchmarkUnary a call costs client and
// server together about 30% less on the short path. The KV handlers read
// no metadata, which the short path does not pass on. The methods that
// write are Async (see proposeAsync): a put holds no goroutine while it
// commits.
func (s *Server) newRPCServer() (*h2grpc.Server, error) {
	k := kvService{s}
	maxRecv := s.cfg.MaxRequestBytes + grpcOverheadBytes
	return h2grpc.New(h2grpc.Config{
		Unary: map[string]h2grpc.Unary{
			"/etcdserverpb.KV/Range":   unary(k.Range),
			"/etcdserverpb.KV/Compact": unary(k.Compact),
		},
		Async: map[string]h2grpc.Async{
			"/etcdserverpb.KV/Put":         async(k.asyncPut),
			"/etcdserverpb.KV/DeleteRange": async(k.asyncDeleteRange),
			"/etcdserverpb.KV/Txn":         async(k.asyncTxn),
		},
		Fallback:       s.grpc,
		MaxRecvMsgSize: maxRecv,
		// A request must fit in its stream's window; the connection's
		// bounds what one client can make the member hold.
		StreamWindow: uint32(max(1<<20, maxRecv+1024)),
		ConnWindow:   1 << 23,
		Workers:      streamWorkers,
		TLS:          s.cfg.ClientTLS,
		Logger:       s.cfg.Logger,
	})
}

// unmarshaler is every request type: gogo-protobuf generates Unmarshal.
type unmarshaler[R any] interface {
	*R
	Unmarshal([]byte) error
}

// unary adapts a KV method to h2grpc: it decodes the request as gRPC-go
// would, with the same error for a malformed one.
func unary[R any, PR unmarshaler[R], S interface {
	comparable
	h2grpc.Message
}](f func(context.Context, PR) (S, error)) h2grpc.Unary {
	return func(ctx context.Context, b []byte) (h2grpc.Message, error) {
		req := PR(new(R))
		if err := req.Unmarshal(b); err != nil {
			return nil, errUnmarshal(err)
		}
		resp, err := f(ctx, req)
		if err != nil {
			return nil, err
		}
		var none S
		if resp == none {
			return nil, status.Error(codes.Internal, "server: a handler returned no response")
		}
		return resp, nil
	}
}

// async adapts an Async KV method to h2grpc: it decodes the request as
// unary does.
func async[R any, PR unmarshaler[R]](f func(context.Context, PR, h2grpc.Call)) h2grpc.Async {
	return func(ctx context.Context, b []byte, call h2grpc.Call) {
		req := PR(new(R))
		if err := req.Unmarshal(b); err != nil {
			call.Answer(nil, errUnmarshal(err))
			return
		}
		f(ctx, req, call)
	}
}

// errUnmarshal is gRPC-go's status for a request it cannot decode.
func errUnmarshal(err error) error {
	return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
}
