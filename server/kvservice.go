package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/lockstep/lockstep/kv"
)

// kvService implements etcd's KV service.
type kvService struct{ s *Server }

var _ pb.KVServer = kvService{}

// sized is every request type: gogo-protobuf generates Size.
type sized interface{ Size() int }

func (k kvService) tooLarge(r sized) bool { return r.Size() > k.s.cfg.MaxRequestBytes }

func (k kvService) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if k.tooLarge(r) {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	req, err := k.s.rangeFromPB(r)
	if err != nil {
		return nil, err
	}
	var resp *kv.RangeResponse
	err = k.s.read(ctx, r.Serializable, func() error {
		var err error
		resp, err = k.s.sm.kv.Range(req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return k.s.rangeToPB(resp), nil
}

func (k kvService) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if k.tooLarge(r) {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	req, err := k.s.putFromPB(r)
	if err != nil {
		return nil, err
	}
	res, err := k.s.propose(ctx, kv.Command{Put: req})
	if err != nil {
		return nil, err
	}
	return k.s.putToPB(res.Put), nil
}

func (k kvService) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if k.tooLarge(r) {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	req, err := k.s.deleteFromPB(r)
	if err != nil {
		return nil, err
	}
	res, err := k.s.propose(ctx, kv.Command{DeleteRange: req})
	if err != nil {
		return nil, err
	}
	return k.s.deleteToPB(res.DeleteRange), nil
}

// Txn replicates a txn that may write. One that cannot (no put or delete on
// either branch) is served as a read, as etcd does: linearizable unless
// every range in it asks to be serializable, and without a new revision.
func (k kvService) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if k.tooLarge(r) {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	req, err := k.s.txnFromPB(r, 1)
	if err != nil {
		return nil, err
	}
	if kv.TxnIsReadOnly(req) {
		return k.readTxn(ctx, r, req)
	}
	res, err := k.s.propose(ctx, kv.Command{Txn: req})
	if err != nil {
		return nil, err
	}
	return k.s.txnToPB(res.Txn), nil
}

// readTxn serves a txn that cannot write (see Txn).
func (k kvService) readTxn(ctx context.Context, r *pb.TxnRequest, req *kv.TxnRequest) (*pb.TxnResponse, error) {
	var resp *kv.TxnResponse
	err := k.s.read(ctx, txnSerializable(r), func() error {
		var err error
		resp, err = k.s.sm.kv.ReadTxn(req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return k.s.txnToPB(resp), nil
}

// txnSerializable reports whether a read-only txn may be served from local
// state: it has ranges and every one of them asks for a serializable read.
// As in etcd a nested txn makes it linearizable; unlike etcd so does having
// no range at all, so that a txn of compares alone is never answered from a
// stale state.
func txnSerializable(r *pb.TxnRequest) bool {
	ranges := 0
	for _, ops := range [2][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			rr := op.GetRequestRange()
			if rr == nil || !rr.Serializable {
				return false
			}
			ranges++
		}
	}
	return ranges > 0
}

func (k kvService) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	res, err := k.s.propose(ctx, kv.Command{Compact: &kv.CompactRequest{Revision: r.Revision}})
	if err != nil {
		return nil, err
	}
	return &pb.CompactionResponse{Header: k.s.header(res.Compact.Revision)}, nil
}
