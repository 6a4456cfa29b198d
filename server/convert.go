package server

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/lockstep/lockstep/kv"
)

// The functions below check a request the way etcd's v3rpc layer does
// before proposing it, so that a request etcd rejects up front is rejected
// here without a log entry, and translate between etcd's and kv's types.
// kv checks the same rules again when applying: the log may hold commands
// from any version of any member.

func (s *Server) checkKey(key, end []byte) error {
	if len(key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if len(key) > s.cfg.MaxKeyBytes || len(end) > s.cfg.MaxKeyBytes {
		return errGRPCKeyTooLarge
	}
	return nil
}

func (s *Server) rangeFromPB(r *pb.RangeRequest) (*kv.RangeRequest, error) {
	if err := s.checkKey(r.Key, r.RangeEnd); err != nil {
		return nil, err
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return nil, rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return nil, rpctypes.ErrGRPCInvalidSortOption
	}
	return &kv.RangeRequest{
		Key:               r.Key,
		RangeEnd:          r.RangeEnd,
		Limit:             r.Limit,
		Revision:          r.Revision,
		SortOrder:         kv.SortOrder(r.SortOrder),
		SortTarget:        kv.SortTarget(r.SortTarget),
		KeysOnly:          r.KeysOnly,
		CountOnly:         r.CountOnly,
		MinModRevision:    r.MinModRevision,
		MaxModRevision:    r.MaxModRevision,
		MinCreateRevision: r.MinCreateRevision,
		MaxCreateRevision: r.MaxCreateRevision,
	}, nil
}

func (s *Server) putFromPB(r *pb.PutRequest) (*kv.PutRequest, error) {
	if err := s.checkKey(r.Key, nil); err != nil {
		return nil, err
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return nil, rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return nil, rpctypes.ErrGRPCLeaseProvided
	}
	return &kv.PutRequest{
		Key:         r.Key,
		Value:       r.Value,
		Lease:       r.Lease,
		PrevKv:      r.PrevKv,
		IgnoreValue: r.IgnoreValue,
		IgnoreLease: r.IgnoreLease,
	}, nil
}

func (s *Server) deleteFromPB(r *pb.DeleteRangeRequest) (*kv.DeleteRangeRequest, error) {
	if err := s.checkKey(r.Key, r.RangeEnd); err != nil {
		return nil, err
	}
	return &kv.DeleteRangeRequest{Key: r.Key, RangeEnd: r.RangeEnd, PrevKv: r.PrevKv}, nil
}

// txnFromPB converts a txn, checking limits and enums on the way.
func (s *Server) txnFromPB(r *pb.TxnRequest, depth int) (*kv.TxnRequest, error) {
	if depth > kv.MaxTxnDepth {
		return nil, errGRPCBadRequest
	}
	if max(len(r.Compare), len(r.Success), len(r.Failure)) > s.cfg.MaxTxnOps {
		return nil, rpctypes.ErrGRPCTooManyOps
	}
	t := &kv.TxnRequest{Compare: make([]kv.Compare, len(r.Compare))}
	for i, c := range r.Compare {
		if c == nil {
			return nil, errGRPCBadRequest
		}
		if err := s.checkKey(c.Key, c.RangeEnd); err != nil {
			return nil, err
		}
		if _, ok := pb.Compare_CompareResult_name[int32(c.Result)]; !ok {
			return nil, errGRPCBadRequest
		}
		kc := kv.Compare{
			Result:   kv.CompareResult(c.Result),
			Target:   kv.CompareTarget(c.Target),
			Key:      c.Key,
			RangeEnd: c.RangeEnd,
		}
		switch u := c.TargetUnion.(type) {
		case *pb.Compare_Version:
			kc.Version = u.Version
		case *pb.Compare_CreateRevision:
			kc.CreateRevision = u.CreateRevision
		case *pb.Compare_ModRevision:
			kc.ModRevision = u.ModRevision
		case *pb.Compare_Value:
			kc.Value = u.Value
		case *pb.Compare_Lease:
			kc.Lease = u.Lease
		case nil:
			// An unset operand is the zero value of the target's type,
			// as protobuf decodes it in etcd.
		default:
			return nil, errGRPCBadRequest
		}
		if _, ok := pb.Compare_CompareTarget_name[int32(c.Target)]; !ok {
			return nil, errGRPCBadRequest
		}
		t.Compare[i] = kc
	}
	var err error
	if t.Success, err = s.opsFromPB(r.Success, depth); err != nil {
		return nil, err
	}
	if t.Failure, err = s.opsFromPB(r.Failure, depth); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Server) opsFromPB(ops []*pb.RequestOp, depth int) ([]kv.RequestOp, error) {
	out := make([]kv.RequestOp, len(ops))
	for i, op := range ops {
		if op == nil {
			return nil, errGRPCBadRequest
		}
		var err error
		switch u := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if u.RequestRange == nil {
				return nil, errGRPCBadRequest
			}
			out[i].Range, err = s.rangeFromPB(u.RequestRange)
		case *pb.RequestOp_RequestPut:
			if u.RequestPut == nil {
				return nil, errGRPCBadRequest
			}
			out[i].Put, err = s.putFromPB(u.RequestPut)
		case *pb.RequestOp_RequestDeleteRange:
			if u.RequestDeleteRange == nil {
				return nil, errGRPCBadRequest
			}
			out[i].DeleteRange, err = s.deleteFromPB(u.RequestDeleteRange)
		case *pb.RequestOp_RequestTxn:
			if u.RequestTxn == nil {
				return nil, errGRPCBadRequest
			}
			out[i].Txn, err = s.txnFromPB(u.RequestTxn, depth+1)
		default:
			// etcd rejects an op with no request the same way.
			return nil, errGRPCBadRequest
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func kvToPB(k *kv.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            k.Key,
		CreateRevision: k.CreateRevision,
		ModRevision:    k.ModRevision,
		Version:        k.Version,
		Value:          k.Value,
		Lease:          k.Lease,
	}
}

func kvsToPB(kvs []kv.KeyValue) []*mvccpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	// One allocation for all the values, one for the pointers.
	vals := make([]mvccpb.KeyValue, len(kvs))
	out := make([]*mvccpb.KeyValue, len(kvs))
	for i := range kvs {
		k := &kvs[i]
		vals[i] = mvccpb.KeyValue{
			Key:            k.Key,
			CreateRevision: k.CreateRevision,
			ModRevision:    k.ModRevision,
			Version:        k.Version,
			Value:          k.Value,
			Lease:          k.Lease,
		}
		out[i] = &vals[i]
	}
	return out
}

func (s *Server) rangeToPB(r *kv.RangeResponse) *pb.RangeResponse {
	return &pb.RangeResponse{
		Header: s.header(r.Revision),
		Kvs:    kvsToPB(r.Kvs),
		More:   r.More,
		Count:  r.Count,
	}
}

func (s *Server) putToPB(r *kv.PutResponse) *pb.PutResponse {
	out := &pb.PutResponse{Header: s.header(r.Revision)}
	if r.PrevKv != nil {
		out.PrevKv = kvToPB(r.PrevKv)
	}
	return out
}

func (s *Server) deleteToPB(r *kv.DeleteRangeResponse) *pb.DeleteRangeResponse {
	return &pb.DeleteRangeResponse{
		Header:  s.header(r.Revision),
		Deleted: r.Deleted,
		PrevKvs: kvsToPB(r.PrevKvs),
	}
}

func (s *Server) txnToPB(r *kv.TxnResponse) *pb.TxnResponse {
	out := &pb.TxnResponse{
		Header:    s.header(r.Revision),
		Succeeded: r.Succeeded,
		Responses: make([]*pb.ResponseOp, len(r.Responses)),
	}
	for i, op := range r.Responses {
		switch {
		case op.Range != nil:
			out.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: s.rangeToPB(op.Range)}}
		case op.Put != nil:
			out.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: s.putToPB(op.Put)}}
		case op.DeleteRange != nil:
			out.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: s.deleteToPB(op.DeleteRange)}}
		case op.Txn != nil:
			out.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: s.txnToPB(op.Txn)}}
		default:
			out.Responses[i] = &pb.ResponseOp{}
		}
	}
	return out
}
