package h2grpc

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// request encodes frames a client would send: SETTINGS, then a call to
// path on stream id with msg as its one message.
func request(id uint32, path string, msg []byte) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "x"}, {"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "5S"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	b := appendFrameHeader(nil, 0, http2.FrameSettings, 0, 0)
	b = appendFrameHeader(b, hb.Len(), http2.FrameHeaders, http2.FlagHeadersEndHeaders, id)
	b = append(b, hb.Bytes()...)
	b = appendFrameHeader(b, 5+len(msg), http2.FrameData, http2.FlagDataEndStream, id)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

// FuzzConn feeds a connection arbitrary bytes after the client preface:
// it must neither panic nor leave a goroutine behind once the client
// hangs up.
func FuzzConn(f *testing.F) {
	rr, _ := (&pb.RangeRequest{Key: []byte("k")}).Marshal()
	hr, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: "x"})
	f.Add(request(1, echoMethod, rr))
	f.Add(request(3, "/grpc.health.v1.Health/Check", hr))
	f.Add(append(request(1, echoMethod, rr), request(3, "/grpc.health.v1.Health/Watch", hr)...))
	ping := appendFrameHeader(appendFrameHeader(nil, 0, http2.FrameSettings, 0, 0), 8, http2.FramePing, 0, 0)
	f.Add(append(appendWindowUpdate(ping, 0, 1000), make([]byte, 8)...))

	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	defer gs.Stop()
	s, err := New(Config{
		Unary:          map[string]Unary{echoMethod: echo},
		Fallback:       gs,
		MaxRecvMsgSize: 1 << 16,
		StreamWindow:   1 << 17,
		ConnWindow:     1 << 17,
		Workers:        1,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Stop()
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		c := newConn(s, server)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
		read := make(chan struct{})
		go func() {
			io.Copy(io.Discard, client)
			close(read)
		}()
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write([]byte(preface))
		client.Write(in)
		// Give calls a moment to answer, then hang up.
		time.Sleep(time.Millisecond)
		client.Close()
		<-read
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			n := len(s.conns)
			s.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the connection's goroutines did not stop after the client hung up")
			}
			time.Sleep(time.Millisecond)
		}
	})
}
