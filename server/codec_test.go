package server

import (
	"bytes"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The server's codec writes the bytes gRPC's default codec writes and reads
// them back; messages without generated code go through the default codec.
func TestCodecMatchesTheDefaultCodec(t *testing.T) {
	c := newCodec()
	def := encoding.GetCodecV2("proto")
	big := strings.Repeat("v", 64<<10) // above gRPC's buffer pooling threshold
	for _, tc := range []struct {
		name     string
		msg, out any
	}{
		{"put request", &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7, PrevKv: true}, &pb.PutRequest{}},
		{"large put request", &pb.PutRequest{Key: []byte("k"), Value: []byte(big)}, &pb.PutRequest{}},
		{"range response", &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 9}, Kvs: []*mvccpb.KeyValue{{Key: []byte("a"), Value: []byte("b"), Version: 2}}, Count: 1}, &pb.RangeResponse{}},
		{"empty message", &pb.RangeRequest{}, &pb.RangeRequest{}},
		{"message without generated code", wrapperspb.String("hello"), &wrapperspb.StringValue{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			want, err := def.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Materialize(), want.Materialize()) {
				t.Fatalf("encodings differ: %d bytes against the default codec's %d", got.Len(), want.Len())
			}
			if err := c.Unmarshal(want, tc.out); err != nil {
				t.Fatal(err)
			}
			again, err := def.Marshal(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Materialize(), want.Materialize()) {
				t.Fatal("decoding and re-encoding changed the message")
			}
			got.Free()
			want.Free()
			again.Free()
		})
	}
	// A reused message is reset before decoding, as the default codec does.
	m := &pb.PutRequest{Key: []byte("old"), IgnoreValue: true}
	enc, _ := def.Marshal(&pb.PutRequest{Key: []byte("new")})
	if err := c.Unmarshal(enc, m); err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != "new" || m.IgnoreValue {
		t.Fatalf("decoding into a used message: got %+v, want only key new", m)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, &pb.PutRequest{}); err == nil {
		t.Fatal("decoding garbage: no error")
	}
}
