package h2grpc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// kvEcho is the benchmark's handler on gRPC-go: echo's answer.
type kvEcho struct{ *pb.UnimplementedKVServer }

func (kvEcho) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: r.Key, Value: r.RangeEnd}}, Count: int64(len(r.RangeEnd))}, nil
}

// BenchmarkUnary compares a unary call answered on the short path with
// the same call answered by gRPC-go's server, each with 256-byte values
// from 16 concurrent callers over 4 connections. Client and server share
// the machine, so ns/op is their CPU together.
func BenchmarkUnary(b *testing.B) {
	for _, name := range []string{"h2grpc", "grpc-go"} {
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			gs := grpc.NewServer()
			pb.RegisterKVServer(gs, kvEcho{})
			defer gs.Stop()
			if name == "h2grpc" {
				s, err := New(Config{Unary: map[string]Unary{echoMethod: echo}, Fallback: gs, MaxRecvMsgSize: 1 << 20, StreamWindow: 1<<20 + 1024, ConnWindow: 1 << 23, Workers: 64})
				if err != nil {
					b.Fatal(err)
				}
				go s.Serve(ln)
				defer s.Stop()
			} else {
				go gs.Serve(ln)
			}
			var ccs []*grpc.ClientConn
			for range 4 {
				cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				defer cc.Close()
				ccs = append(ccs, cc)
			}
			value := make([]byte, 256)
			var next atomic.Uint32
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(p *testing.PB) {
				cc := ccs[next.Add(1)%uint32(len(ccs))]
				for p.Next() {
					if _, err := call(context.Background(), cc, []byte("key"), value); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
