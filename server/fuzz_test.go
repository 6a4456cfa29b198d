package server

import (
	"errors"
	"reflect"
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
		{Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VERSION, TargetUnion: &pb.Compare_Version{Version: 2}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 4}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Revision: 2}}}}},
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
		_ = txnSerializable(&r)
		if !kv.TxnIsReadOnly(txn) {
			return
		}
		// A read-only txn is served by ReadTxn instead of the log: it must
		// answer what applying it would, on the same state.
		read, applied := fuzzStore(t), fuzzStore(t)
		got, gotErr := read.ReadTxn(txn)
		res, err := applied.Apply(100, append([]byte(nil), data...))
		if err != nil {
			t.Fatalf("applying a read-only txn: %v", err)
		}
		if !errors.Is(gotErr, res.Err) || !errors.Is(res.Err, gotErr) {
			t.Fatalf("ReadTxn error %v, Apply error %v", gotErr, res.Err)
		}
		if gotErr == nil && !reflect.DeepEqual(got, res.Txn) {
			t.Fatalf("ReadTxn and Apply disagree:\n%+v\n%+v", got, res.Txn)
		}
	})
}

// fuzzStore returns a store with a little history (puts, an overwrite, a
// delete, a compaction) for txns to read.
func fuzzStore(t *testing.T) *kv.Store {
	st, err := kv.New(kv.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cmds := []kv.Command{
		{Put: &kv.PutRequest{Key: []byte("k"), Value: []byte("v")}},
		{Put: &kv.PutRequest{Key: []byte("a"), Value: []byte("1")}},
		{Put: &kv.PutRequest{Key: []byte("k"), Value: []byte("w")}},
		{DeleteRange: &kv.DeleteRangeRequest{Key: []byte("a")}},
		{Put: &kv.PutRequest{Key: []byte("b"), Value: []byte("2")}},
		{Compact: &kv.CompactRequest{Revision: 3}},
	}
	for i, c := range cmds {
		b, err := kv.EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := st.Apply(uint64(i+1), b); err != nil || res.Err != nil {
			t.Fatalf("fuzz store command %d: %v, %v", i, err, res.Err)
		}
	}
	return st
}
