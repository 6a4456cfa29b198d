package h2grpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// The short path's test method: it answers a RangeRequest with its key as
// the only key-value, its value being the request's RangeEnd.
const echoMethod = "/etcdserverpb.KV/Range"

func echo(_ context.Context, b []byte) (Message, error) {
	var req pb.RangeRequest
	if err := req.Unmarshal(b); err != nil {
		return nil, err
	}
	return &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: req.Key, Value: req.RangeEnd}}, Count: int64(len(req.RangeEnd))}, nil
}

// duplex echoes each message of a full-duplex call.
type duplex struct {
	testpb.UnimplementedTestServiceServer
}

func (duplex) FullDuplexCall(s grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

type fixture struct {
	srv    *Server
	gs     *grpc.Server
	health *health.Server
	addr   string
	served chan error
}

// start serves cfg (its Fallback a gRPC-go server with the health and
// test services) on a loopback port.
func start(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{gs: grpc.NewServer(grpc.StreamInterceptor(StreamInterceptor)), health: health.NewServer(), served: make(chan error, 1)}
	healthpb.RegisterHealthServer(f.gs, f.health)
	testpb.RegisterTestServiceServer(f.gs, duplex{})
	cfg.Fallback = f.gs
	if cfg.MaxRecvMsgSize == 0 {
		cfg.MaxRecvMsgSize = 4 << 20
	}
	if cfg.StreamWindow == 0 {
		cfg.StreamWindow = uint32(cfg.MaxRecvMsgSize + 1024)
	}
	if cfg.ConnWindow == 0 {
		cfg.ConnWindow = 1 << 20
	}
	if cfg.Unary == nil {
		cfg.Unary = map[string]Unary{echoMethod: echo}
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go func() { f.served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		f.gs.Stop()
	})
	return f
}

func (f *fixture) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient(f.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func call(ctx context.Context, cc *grpc.ClientConn, key, value []byte, opts ...grpc.CallOption) (*pb.RangeResponse, error) {
	var resp pb.RangeResponse
	err := cc.Invoke(ctx, echoMethod, &pb.RangeRequest{Key: key, RangeEnd: value}, &resp, opts...)
	return &resp, err
}

func TestConcurrentUnaryCallsGetTheirOwnAnswers(t *testing.T) {
	f := start(t, Config{Workers: 2})
	cc := f.dial(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Appendf(nil, "key-%d-%d", g, i)
				value := bytes.Repeat(key, i*37)
				resp, err := call(context.Background(), cc, key, value)
				if err != nil {
					errs <- err
					return
				}
				if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Key, key) || !bytes.Equal(resp.Kvs[0].Value, value) {
					errs <- fmt.Errorf("call %s got %d kvs (first key %q)", key, len(resp.Kvs), resp.Kvs)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestHandlerErrorsBecomeTheirStatus(t *testing.T) {
	msg := "not 100% fine:\nkey \"k\" is ü"
	f := start(t, Config{Unary: map[string]Unary{
		echoMethod: func(ctx context.Context, b []byte) (Message, error) {
			switch string(b[2:]) { // b encodes a RangeRequest whose key is the case
			case "status":
				return nil, status.Error(codes.FailedPrecondition, msg)
			case "plain":
				return nil, errors.New("plain failure")
			case "deadline":
				return nil, context.DeadlineExceeded
			}
			return echo(ctx, b)
		},
	}})
	cc := f.dial(t)
	for _, tc := range []struct {
		key  string
		code codes.Code
		msg  string
	}{
		{"status", codes.FailedPrecondition, msg},
		{"plain", codes.Unknown, "plain failure"},
		{"deadline", codes.DeadlineExceeded, context.DeadlineExceeded.Error()},
	} {
		_, err := call(context.Background(), cc, []byte(tc.key), nil)
		if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%s: got %v %q, want %v %q", tc.key, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	if _, err := call(context.Background(), cc, []byte("fine"), nil); err != nil {
		t.Errorf("a call after the failures: %v", err)
	}
}

// A response many times the client's windows arrives whole: the server
// waits for the client's WINDOW_UPDATEs.
func TestLargeResponsesRespectTheClientsWindows(t *testing.T) {
	f := start(t, Config{})
	cc := f.dial(t, grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	value := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := call(context.Background(), cc, fmt.Appendf(nil, "big-%d", g), value[g:], grpc.MaxCallRecvMsgSize(8<<20))
			if err != nil {
				t.Error(err)
				return
			}
			if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Value, value[g:]) {
				t.Errorf("call %d: the value came back changed", g)
			}
		}()
	}
	wg.Wait()
}

func TestRequestOverTheLimitIsRefusedAndTheConnectionGoesOn(t *testing.T) {
	f := start(t, Config{MaxRecvMsgSize: 1000})
	cc := f.dial(t)
	_, err := call(context.Background(), cc, []byte("k"), make([]byte, 2000))
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") {
		t.Fatalf("a 2000-byte request got %v %q, want ResourceExhausted", st.Code(), st.Message())
	}
	if _, err := call(context.Background(), cc, []byte("k"), make([]byte, 900)); err != nil {
		t.Fatalf("a request under the limit after it: %v", err)
	}
}

func TestDeadlineAndCancellationReachTheHandler(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	f := start(t, Config{Unary: map[string]Unary{
		echoMethod: func(ctx context.Context, b []byte) (Message, error) {
			if string(b[2:]) == "deadline" {
				d, ok := ctx.Deadline()
				if !ok {
					return nil, status.Error(codes.Internal, "no deadline")
				}
				return &pb.RangeResponse{Count: int64(time.Until(d))}, nil
			}
			entered <- struct{}{}
			<-ctx.Done()
			cancelled <- ctx.Err()
			return nil, ctx.Err()
		},
	}})
	cc := f.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	resp, err := call(ctx, cc, []byte("deadline"), nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Duration(resp.Count); left <= 0 || left > 5*time.Second {
		t.Fatalf("the handler's deadline was %v away, want within the client's 5s", left)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := call(ctx, cc, []byte("block"), nil)
		done <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the handler's context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's cancellation did not reach the handler")
	}
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("the cancelled call returned %v", err)
	}
}

// Methods off the short path go to the fallback on the same connection:
// a unary call, a server stream and a full-duplex stream that moves many
// times the stream and connection windows each way.
func TestOtherCallsReachTheFallback(t *testing.T) {
	f := start(t, Config{ConnWindow: 1 << 17, StreamWindow: 1<<16 + 1024, MaxRecvMsgSize: 1 << 16})
	cc := f.dial(t, grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	hc := healthpb.NewHealthClient(cc)
	f.health.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	got, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check: %v %v", got, err)
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "none"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v, want NotFound", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch's first answer: %v %v", r, err)
	}
	f.health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	if r, err := w.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch's answer after the change: %v %v", r, err)
	}

	// The short path works beside the open stream.
	if _, err := call(context.Background(), cc, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}

	d, err := testpb.NewTestServiceClient(cc).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 200, 32 << 10 // 6.4 MB each way
	go func() {
		for i := range n {
			body := bytes.Repeat([]byte{byte(i)}, size)
			if err := d.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
		d.CloseSend()
	}()
	for i := range n {
		r, err := d.Recv()
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if len(r.Payload.Body) != size || r.Payload.Body[0] != byte(i) || r.Payload.Body[size-1] != byte(i) {
			t.Fatalf("message %d came back as %d bytes of %d", i, len(r.Payload.Body), r.Payload.Body[0])
		}
	}
	if _, err := d.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last echo: %v, want EOF", err)
	}
}

func TestStopEndsCallsAndConnections(t *testing.T) {
	entered := make(chan struct{})
	f := start(t, Config{Unary: map[string]Unary{
		echoMethod: func(ctx context.Context, b []byte) (Message, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}})
	cc := f.dial(t)
	done := make(chan error, 1)
	go func() {
		_, err := call(context.Background(), cc, []byte("k"), nil)
		done <- err
	}()
	<-entered
	stopped := make(chan struct{})
	go func() {
		f.srv.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return while a call was in flight")
	}
	if err := <-done; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Fatalf("the call in flight got %v", err)
	}
	if err := <-f.served; !errors.Is(err, ErrStopped) {
		t.Fatalf("Serve returned %v, want ErrStopped", err)
	}
}

// Bytes that are not HTTP/2, or frames that break its rules, close that
// connection only.
func TestBadClientsLoseOnlyTheirConnection(t *testing.T) {
	f := start(t, Config{})
	settings := appendFrameHeader(nil, 0, 0x4, 0, 0)
	for name, b := range map[string][]byte{
		"not http/2":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nand then some more bytes"),
		"no settings first":   append([]byte(preface), appendWindowUpdate(nil, 0, 10)...),
		"even stream id":      append(append([]byte(preface), settings...), appendFrameHeader(nil, 1, 0x1, 0x5, 2)...),
		"data on idle stream": append(append([]byte(preface), settings...), appendFrameHeader(nil, 3, 0x0, 0x1, 7)...),
		"oversized frame":     append(append([]byte(preface), settings...), 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1),
	} {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(b)
		c.Write(make([]byte, 64))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: the server did not close the connection: %v", name, err)
		}
		c.Close()
	}
	cc := f.dial(t)
	if _, err := call(context.Background(), cc, []byte("k"), nil); err != nil {
		t.Fatalf("a good client after the bad ones: %v", err)
	}
}

func TestNewRejectsBadConfigs(t *testing.T) {
	gs := grpc.NewServer()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxRecvMsgSize: 10, StreamWindow: 1 << 16, ConnWindow: 1 << 16}, "Fallback"},
		{Config{Fallback: gs, StreamWindow: 1 << 16, ConnWindow: 1 << 16}, "MaxRecvMsgSize"},
		{Config{Fallback: gs, MaxRecvMsgSize: 1 << 16, StreamWindow: 1 << 16, ConnWindow: 1 << 16}, "StreamWindow"},
		{Config{Fallback: gs, MaxRecvMsgSize: 10, StreamWindow: 1 << 16, ConnWindow: 10}, "ConnWindow"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1S": time.Second, "250m": 250 * time.Millisecond, "99999999n": 99999999, "2H": 2 * time.Hour, "3M": 3 * time.Minute, "7u": 7 * time.Microsecond,
	} {
		if got, ok := parseTimeout(in); !ok || got != want {
			t.Errorf("parseTimeout(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "S", "1", "1x", "-1S", "123456789S", "1 S"} {
		if _, ok := parseTimeout(in); ok {
			t.Errorf("parseTimeout(%q) accepted", in)
		}
	}
}

func TestEncodeMessage(t *testing.T) {
	for in, want := range map[string]string{
		"plain text": "plain text", "100%": "100%25", "a\nb": "a%0Ab", "ü": "%C3%BC",
	} {
		if got := encodeMessage(in); got != want {
			t.Errorf("encodeMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
