package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// gateway is etcd's HTTP/JSON API (POST /v3/kv/put, /v3/kv/range, ...,
// with base64 keys and values, as etcd serves it), translated to the
// member's own gRPC API through a loopback connection. It is served on the
// plaintext client listeners, beside gRPC (see splitListener).
type gateway struct {
	conn *grpc.ClientConn
	http *http.Server
}

func newGateway(ctx context.Context, grpcAddr string) (*gateway, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	// etcd's JSON: field names as in the .proto files (cluster_id,
	// mod_revision), zero fields left out.
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}))
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler, gw.RegisterWatchHandler, gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler, gw.RegisterMaintenanceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return &gateway{conn: conn, http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// serve serves the gateway on l until close.
func (g *gateway) serve(l *chanListener) error {
	if err := g.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (g *gateway) close() {
	g.http.Close()
	g.conn.Close()
}
