package server

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/lockstep/lockstep/kv"
)

// FuzzTxnRequest feeds arbitrary wire bytes through what the server does
// with a txn before proposing it: decode, check and convert, encode for
// the log. None of it may panic, and whatever passes the checks must
// encode as a kv command that kv decodes back.
func FuzzTxnRequest(f *testing.F) {
	seed := []*pb.TxnRequest{
		{Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("v")}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), SortOrder: 2}}}}},
		{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}}}}}}}}},
	}
	for _, r := range seed {
		b, err := r.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := &Server{cfg: Config{MaxKeyBytes: DefaultMaxKeyBytes, MaxTxnOps: 128, MaxRequestBytes: DefaultMaxRequestBytes}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pb.TxnRequest
		if err := r.Unmarshal(b); err != nil {
			return
		}
		txn, err := s.txnFromPB(&r, 1)
		if err != nil {
			return
		}
		data, err := kv.EncodeCommand(kv.Command{Txn: txn})
		if err != nil {
			t.Fatalf("a checked txn does not encode: %v", err)
		}
		if _, err := kv.DecodeCommand(data); err != nil {
			t.Fatalf("an encoded txn does not decode: %v", err)
		}
	})
}
