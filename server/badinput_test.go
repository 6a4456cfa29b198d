package server

import (
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestMalformedRequests sends requests etcd's client would never build,
// straight over gRPC: each gets an InvalidArgument-class error, and the
// member keeps serving.
func TestMalformedRequests(t *testing.T) {
	c := newTestCluster(t, 1)
	c.waitLeader()
	conn, err := grpc.NewClient(c.clients[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	kvc := pb.NewKVClient(conn)
	ctx := testCtx(t)

	nested := &pb.TxnRequest{}
	for i := 0; i < 100; i++ {
		nested = &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: nested}}}}
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"bad sort order", func() error {
			_, err := kvc.Range(ctx, &pb.RangeRequest{Key: []byte("k"), SortOrder: 7})
			return err
		}, rpctypes.ErrGRPCInvalidSortOption},
		{"bad sort target", func() error {
			_, err := kvc.Range(ctx, &pb.RangeRequest{Key: []byte("k"), SortTarget: -1})
			return err
		}, rpctypes.ErrGRPCInvalidSortOption},
		{"txn op without a request", func() error {
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return err
		}, errGRPCBadRequest},
		{"txn op with an empty put", func() error {
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{}}}})
			return err
		}, errGRPCBadRequest},
		{"compare with a bad target", func() error {
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k"), Target: 42}}})
			return err
		}, errGRPCBadRequest},
		{"compare with a bad result", func() error {
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k"), Result: 42}}})
			return err
		}, errGRPCBadRequest},
		{"compare with an empty key", func() error {
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{}}})
			return err
		}, rpctypes.ErrGRPCEmptyKey},
		{"txn nested too deep", func() error {
			_, err := kvc.Txn(ctx, nested)
			return err
		}, errGRPCBadRequest},
		{"too many compares", func() error {
			cmps := make([]*pb.Compare, 129)
			for i := range cmps {
				cmps[i] = &pb.Compare{Key: []byte("k")}
			}
			_, err := kvc.Txn(ctx, &pb.TxnRequest{Compare: cmps})
			return err
		}, rpctypes.ErrGRPCTooManyOps},
		{"ignore lease with a lease", func() error {
			_, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("k"), Lease: 5, IgnoreLease: true})
			return err
		}, rpctypes.ErrGRPCLeaseProvided},
		{"large range end", func() error {
			_, err := kvc.Range(ctx, &pb.RangeRequest{Key: []byte("k"), RangeEnd: make([]byte, DefaultMaxKeyBytes+1)})
			return err
		}, errGRPCKeyTooLarge},
	} {
		err := tc.do()
		if status.Code(err) != status.Code(tc.want) || status.Convert(err).Message() != status.Convert(tc.want).Message() {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Beyond gRPC's own limit the transport refuses the message.
	_, err = kvc.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: make([]byte, DefaultMaxRequestBytes+grpcOverheadBytes+1)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("put over gRPC's limit: got %v, want ResourceExhausted", err)
	}
	// Bytes that are not the request's message get what gRPC-go's own
	// decoding answers, on every KV method.
	for _, m := range []string{"Range", "Put", "DeleteRange", "Txn", "Compact"} {
		err := conn.Invoke(ctx, "/etcdserverpb.KV/"+m, []byte{0x0a, 0xff}, new([]byte), grpc.ForceCodec(rawCodec{}))
		if status.Code(err) != codes.Internal || !strings.HasPrefix(status.Convert(err).Message(), "grpc: error unmarshalling request: ") {
			t.Errorf("%s of a malformed message: got %v, want Internal, grpc: error unmarshalling request", m, err)
		}
	}
	// Compare operands of another target's type are read as etcd does:
	// only the field the target selects counts.
	if _, err := kvc.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Version{Version: 3}}}}); err != nil {
		t.Errorf("compare with a mismatched operand: %v", err)
	}
	if _, err := kvc.Put(ctx, &pb.PutRequest{Key: []byte("still"), Value: []byte("serving")}); err != nil {
		t.Fatalf("after the bad requests: %v", err)
	}
	if !strings.Contains(errGRPCKeyTooLarge.Error(), "key is too large") {
		t.Fatal(errGRPCKeyTooLarge)
	}
}

// rawCodec sends a []byte as the message itself.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }
