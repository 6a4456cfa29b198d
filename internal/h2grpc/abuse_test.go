package h2grpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// raw is a hand-driven HTTP/2 client connection.
type raw struct {
	t   *testing.T
	c   net.Conn
	enc *hpack.Encoder
	hb  bytes.Buffer
	fr  *http2.Framer // what readUntil reads with
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, c: c}
	r.enc = hpack.NewEncoder(&r.hb)
	r.write(append([]byte(preface), appendFrameHeader(nil, 0, http2.FrameSettings, 0, 0)...))
	return r
}

func (r *raw) write(b []byte) error {
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := r.c.Write(b)
	return err
}

// headers encodes a request's HEADERS frame for path, with extra fields.
func (r *raw) headers(id uint32, path string, end bool, extra ...hpack.HeaderField) []byte {
	r.hb.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: path}, {Name: ":authority", Value: "x"}, {Name: "content-type", Value: "application/grpc"}}, extra...) {
		r.enc.WriteField(f)
	}
	flags := http2.FlagHeadersEndHeaders
	if end {
		flags |= http2.FlagHeadersEndStream
	}
	b := appendFrameHeader(nil, r.hb.Len(), http2.FrameHeaders, flags, id)
	return append(b, r.hb.Bytes()...)
}

func data(id uint32, end bool, p []byte) []byte {
	flags := http2.Flags(0)
	if end {
		flags = http2.FlagDataEndStream
	}
	return append(appendFrameHeader(nil, len(p), http2.FrameData, flags, id), p...)
}

// request is a whole call of the test method, for key "k", on stream id.
func (r *raw) request(id uint32, extra ...hpack.HeaderField) []byte {
	rr, _ := (&pb.RangeRequest{Key: []byte("k")}).Marshal()
	return append(r.headers(id, echoMethod, false, extra...), data(id, true, append(prefix(uint32(len(rr))), rr...))...)
}

// prefix is a gRPC message prefix declaring n bytes.
func prefix(n uint32) []byte { return binary.BigEndian.AppendUint32([]byte{0}, n) }

// A message prefix alone must not make the server set aside the length it
// declares.
func TestDeclaredLengthsDoNotClaimMemory(t *testing.T) {
	f := start(t, Config{})
	r := dialRaw(t, f.addr)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var b []byte
	for i := range 200 {
		id := uint32(2*i + 1)
		b = append(b, r.headers(id, echoMethod, false)...)
		b = append(b, data(id, false, prefix(4<<20-16))...)
	}
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	// Wait until the server has taken all 200 streams in.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.srv.mu.Lock()
		n := 0
		for c := range f.srv.conns {
			c.mu.Lock()
			n += len(c.streams)
			c.mu.Unlock()
		}
		f.srv.mu.Unlock()
		if n == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d streams, want 200", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 100<<20 {
		t.Fatalf("200 prefixes declaring 4 MiB each grew the heap by %d MiB", grew>>20)
	}
}

// A client that sends control frames and never reads cannot make the
// server queue more than maxQueued bytes for it.
func TestAClientThatDoesNotReadCannotGrowTheQueue(t *testing.T) {
	f := start(t, Config{})
	r := dialRaw(t, f.addr)
	pings := bytes.Repeat(append(appendFrameHeader(nil, 8, http2.FramePing, 0, 0), make([]byte, 8)...), 1<<14)
	var most atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			f.srv.mu.Lock()
			for c := range f.srv.conns {
				c.mu.Lock()
				if n := int64(len(c.queue)); n > most.Load() {
					most.Store(n)
				}
				c.mu.Unlock()
			}
			f.srv.mu.Unlock()
		}
	}()
	// 64 MiB of PINGs ask for 64 MiB of acknowledgments; the writes stop
	// once the server stops reading (the deadline ends them).
	r.c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	for range 256 {
		if _, err := r.c.Write(pings); err != nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	if n := most.Load(); n > maxQueued+64<<10 {
		t.Fatalf("the server queued %d bytes for a client that does not read, want at most about %d", n, maxQueued)
	}
}

// stuck is a client-streaming handler that never receives.
type stuck struct {
	testpb.UnimplementedTestServiceServer
}

func (stuck) StreamingInputCall(s grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	<-s.Context().Done()
	return s.Context().Err()
}

// A fallback stream whose handler stops receiving stops its client after
// about one window: gRPC-go reads bodies eagerly, so the window is credited
// only as the handler receives.
func TestAFallbackStreamThatStopsReceivingStopsItsClient(t *testing.T) {
	gs := grpc.NewServer(grpc.StreamInterceptor(StreamInterceptor))
	testpb.RegisterTestServiceServer(gs, stuck{})
	const window = 1 << 20
	srv, err := New(Config{Fallback: gs, MaxRecvMsgSize: window - 1024, StreamWindow: window, ConnWindow: 1 << 23, Unary: map[string]Unary{}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()
	defer gs.Stop()
	f := &fixture{addr: ln.Addr().String()}
	cc := f.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := testpb.NewTestServiceClient(cc).StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	go func() {
		msg := &testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 32<<10)}}
		for s.Send(msg) == nil {
			sent.Add(32 << 10)
		}
	}()
	time.Sleep(2 * time.Second)
	// One stream window, plus what the client's own buffers hold.
	if n := sent.Load(); n > 4*window {
		t.Fatalf("the client sent %d MiB to a handler that receives nothing, want about one window (%d MiB)", n>>20, window>>20)
	}
}

// Streams the client resets still count against maxStreams until their
// handlers return.
func TestResetStreamsCountUntilTheirHandlersReturn(t *testing.T) {
	var running, most atomic.Int64
	release := make(chan struct{})
	f := start(t, Config{Unary: map[string]Unary{
		echoMethod: func(ctx context.Context, b []byte) (Message, error) {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release // ignores its context, as a slow handler may
			running.Add(-1)
			return echo(ctx, b)
		},
	}})
	defer close(release)
	r := dialRaw(t, f.addr)
	msg := prefix(0)
	var b []byte
	for i := range 3 * maxStreams {
		id := uint32(2*i + 1)
		b = append(b, r.headers(id, echoMethod, false)...)
		b = append(b, data(id, true, msg)...)
		b = appendRST(b, id, http2.ErrCodeCancel)
	}
	go r.c.Write(b)
	go func() { // drain what the server sends
		buf := make([]byte, 64<<10)
		for {
			if _, err := r.c.Read(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(2 * time.Second)
	if n := most.Load(); n > maxStreams {
		t.Fatalf("%d handlers ran at once on one connection, want at most %d", n, maxStreams)
	}
	if most.Load() < maxStreams/2 {
		t.Fatalf("only %d handlers started: the test did not reach the limit", most.Load())
	}
}

// tempFailing fails its first Accept with EMFILE.
type tempFailing struct {
	net.Listener
	failed atomic.Bool
}

func (l *tempFailing) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestServeOutlivesATemporaryAcceptError(t *testing.T) {
	f := start(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(&tempFailing{Listener: ln}) }()
	f2 := &fixture{addr: ln.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := call(ctx, f2.dial(t), []byte("k"), nil); err != nil {
		select {
		case err := <-served:
			t.Fatalf("Serve returned after EMFILE: %v", err)
		default:
		}
		t.Fatal(err)
	}
}

// A stream error ends only its stream: RST_STREAM(PROTOCOL_ERROR), and the
// next request is answered. A request rejected for a malformed header
// still opened its stream, so its DATA must not end the connection.
func TestAStreamErrorResetsOnlyItsStream(t *testing.T) {
	rr, _ := (&pb.RangeRequest{Key: []byte("k")}).Marshal()
	msg := append(prefix(uint32(len(rr))), rr...)
	for _, tc := range []struct {
		name   string
		stream func(r *raw) []byte // stream 1, which must be reset
	}{
		{"a malformed header", func(r *raw) []byte {
			return append(r.headers(1, echoMethod, false, hpack.HeaderField{Name: "bad", Value: "a\x00b"}), data(1, true, msg)...)
		}},
		{"a zero WINDOW_UPDATE", func(r *raw) []byte {
			return append(r.headers(1, echoMethod, false), append(appendFrameHeader(nil, 4, http2.FrameWindowUpdate, 0, 1), 0, 0, 0, 0)...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, Config{})
			r := dialRaw(t, f.addr)
			b := tc.stream(r)
			b = append(b, r.headers(3, echoMethod, false)...)
			b = append(b, data(3, true, msg)...)
			if err := r.write(b); err != nil {
				t.Fatal(err)
			}
			reset := false
			r.readUntil("the connection ended before stream 3 was answered: %v", func(fm http2.Frame) bool {
				switch fm := fm.(type) {
				case *http2.GoAwayFrame:
					t.Fatalf("GOAWAY (%v) for one stream's error", fm.ErrCode)
				case *http2.RSTStreamFrame:
					reset = reset || fm.StreamID == 1 && fm.ErrCode == http2.ErrCodeProtocol
				case *http2.MetaHeadersFrame:
					if fm.StreamID == 1 {
						t.Fatal("stream 1 was answered")
					}
					if fm.StreamID == 3 {
						if !reset {
							t.Fatal("stream 1 was not reset with PROTOCOL_ERROR")
						}
						return true
					}
				}
				return false
			})
		})
	}
}

// HEADERS for a stream that has ended (a lower ID) are ignored, not a
// reason to end the connection.
func TestHeadersForAnEndedStreamAreIgnored(t *testing.T) {
	f := start(t, Config{})
	r := dialRaw(t, f.addr)
	rr, _ := (&pb.RangeRequest{Key: []byte("k")}).Marshal()
	msg := append(prefix(uint32(len(rr))), rr...)
	var b []byte
	b = append(b, r.headers(3, echoMethod, false)...)
	b = append(b, data(3, true, msg)...)
	b = append(b, r.headers(1, echoMethod, true)...)
	b = append(b, r.headers(5, echoMethod, false)...)
	b = append(b, data(5, true, msg)...)
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	r.readUntil("the connection ended before stream 5 was answered: %v", func(fm http2.Frame) bool {
		if ga, ok := fm.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY (%v) after HEADERS for an ended stream", ga.ErrCode)
		}
		if h, ok := fm.(*http2.MetaHeadersFrame); ok && h.StreamID == 5 {
			return true
		}
		return false
	})
}

// An answer still waiting for the client's window when the call's
// deadline passes ends with RST_STREAM: the client learns the stream is
// over even if it never opens its window.
func TestAnAnswerStuckPastItsDeadlineIsReset(t *testing.T) {
	f := start(t, Config{})
	r := dialRaw(t, f.addr)
	rr, _ := (&pb.RangeRequest{Key: []byte("k"), RangeEnd: make([]byte, 1000)}).Marshal()
	b := appendFrameHeader(nil, 6, http2.FrameSettings, 0, 0)
	b = appendSetting(b, http2.SettingInitialWindowSize, 16)
	b = append(b, r.headers(1, echoMethod, false, hpack.HeaderField{Name: "grpc-timeout", Value: "200m"})...)
	b = append(b, data(1, true, append(prefix(uint32(len(rr))), rr...))...)
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	r.readUntil("no RST_STREAM for the stuck answer: %v", func(fm http2.Frame) bool {
		if rst, ok := fm.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
			if rst.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("stream 1 reset with %v, want CANCEL", rst.ErrCode)
			}
			return true
		}
		if h, ok := fm.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 && h.StreamEnded() {
			t.Fatal("the answer ended normally although the client's window held 16 bytes")
		}
		return false
	})
}

// readUntil reads the server's frames until fn reports it has seen what it
// waits for; the test fails with msg if the connection ends first, or
// after 10 s.
func (r *raw) readUntil(msg string, fn func(http2.Frame) bool) {
	r.t.Helper()
	if r.fr == nil {
		// One framer for the connection: its decoder must see every
		// header block.
		r.fr = http2.NewFramer(nil, r.c)
		r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	}
	fr := r.fr
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		fm, err := fr.ReadFrame()
		if err != nil {
			r.t.Fatalf(msg, err)
		}
		if fn(fm) {
			return
		}
	}
}

// A call whose deadline passes while its request is still arriving ends
// with DEADLINE_EXCEEDED and RST_STREAM, as from gRPC-go, and what it held
// is let go: the connection goes on.
func TestARequestUnfinishedAtItsDeadlineEnds(t *testing.T) {
	f := start(t, Config{})
	r := dialRaw(t, f.addr)
	var b []byte
	b = append(b, r.headers(1, echoMethod, false, hpack.HeaderField{Name: "grpc-timeout", Value: "200m"})...)
	b = append(b, data(1, false, append(prefix(100), make([]byte, 10)...))...) // 10 of 100 bytes
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	status, reset, sent := "", false, false
	r.readUntil("the unfinished request was not ended, or the next one not answered: %v", func(fm http2.Frame) bool {
		switch fm := fm.(type) {
		case *http2.MetaHeadersFrame:
			if fm.StreamID == 1 && fm.StreamEnded() {
				status = headerValue(fm, "grpc-status")
			}
			if fm.StreamID == 3 && fm.StreamEnded() {
				return true // the connection went on
			}
		case *http2.RSTStreamFrame:
			if fm.StreamID == 1 {
				if fm.ErrCode != http2.ErrCodeNo {
					t.Fatalf("stream 1 reset with %v, want NO_ERROR after its status", fm.ErrCode)
				}
				reset = true
			}
		}
		if status != "" && reset && !sent {
			sent = true
			if err := r.write(r.request(3)); err != nil {
				t.Fatal(err)
			}
		}
		return false
	})
	if status != "4" {
		t.Fatalf("grpc-status %q, want 4 (DEADLINE_EXCEEDED)", status)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("ended after %v, before its 200 ms deadline", d)
	}
	f.srv.mu.Lock()
	var held int64
	for c := range f.srv.conns {
		c.mu.Lock()
		held += c.held
		c.mu.Unlock()
	}
	f.srv.mu.Unlock()
	if held != 0 {
		t.Fatalf("the connection still holds %d request bytes", held)
	}
}

func headerValue(h *http2.MetaHeadersFrame, name string) string {
	for _, f := range h.RegularFields() {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Stream errors that a reset cannot answer end the connection: those on
// an idle stream (one the client never opened, or any even one), which
// RST_STREAM must not be sent for, and a malformed HEADERS frame, whose
// header block the decoder never sees.
func TestAStreamErrorThatCannotBeResetEndsTheConnection(t *testing.T) {
	padded := func(h []byte) []byte {
		h[4] |= byte(http2.FlagHeadersPadded)
		h[9] = 0xff // the pad length, over the block that follows
		return h
	}
	zeroUpdate := func(id uint32) []byte {
		return append(appendFrameHeader(nil, 4, http2.FrameWindowUpdate, 0, id), 0, 0, 0, 0)
	}
	for _, tc := range []struct {
		name  string
		frame func(r *raw) []byte
	}{
		{"zero WINDOW_UPDATE on an idle stream", func(*raw) []byte { return zeroUpdate(5) }},
		{"zero WINDOW_UPDATE on an even stream", func(r *raw) []byte {
			return append(r.headers(5, echoMethod, false), zeroUpdate(2)...)
		}},
		{"HEADERS with more padding than payload", func(r *raw) []byte { return padded(r.headers(5, echoMethod, true)) }},
		{"trailers with more padding than payload", func(r *raw) []byte {
			return append(r.headers(1, echoMethod, false), padded(r.headers(1, echoMethod, true))...)
		}},
		{"a bad field on an even stream", func(r *raw) []byte {
			return append(r.headers(5, echoMethod, false), r.headers(2, echoMethod, true, hpack.HeaderField{Name: "bad", Value: "a\x00b"})...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, Config{})
			r := dialRaw(t, f.addr)
			if err := r.write(tc.frame(r)); err != nil {
				t.Fatal(err)
			}
			r.readUntil("no GOAWAY: %v", func(fm http2.Frame) bool {
				switch fm := fm.(type) {
				case *http2.RSTStreamFrame:
					t.Fatalf("RST_STREAM for stream %d (%v)", fm.StreamID, fm.ErrCode)
				case *http2.GoAwayFrame:
					if fm.ErrCode != http2.ErrCodeProtocol {
						t.Fatalf("GOAWAY with %v, want PROTOCOL_ERROR", fm.ErrCode)
					}
					return true
				}
				return false
			})
		})
	}
}

// A connection that ends cancels the calls still running on it.
func TestAClosedConnectionCancelsItsCalls(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	f := start(t, Config{Unary: map[string]Unary{
		echoMethod: func(ctx context.Context, b []byte) (Message, error) {
			entered <- struct{}{}
			select {
			case <-ctx.Done():
				cancelled <- ctx.Err()
			case <-time.After(10 * time.Second):
				cancelled <- nil
			}
			return nil, ctx.Err()
		},
	}})
	r := dialRaw(t, f.addr)
	if err := r.write(r.request(1)); err != nil {
		t.Fatal(err)
	}
	<-entered
	r.c.Close()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("the handler's context ended with %v after its connection closed, want context.Canceled", err)
	}
}

// ping is a PING frame carrying data.
func ping(data string) []byte {
	return append(appendFrameHeader(nil, 8, http2.FramePing, 0, 0), data[:8]...)
}

// settled waits for the server's acknowledgment of the client's SETTINGS,
// so that a PING sent after is not acknowledged with it.
func (r *raw) settled() {
	r.t.Helper()
	r.readUntil("no SETTINGS acknowledgment: %v", func(fm http2.Frame) bool {
		s, ok := fm.(*http2.SettingsFrame)
		return ok && s.IsAck()
	})
}

// heldAcks reports how many PING acknowledgments the server's connections
// hold.
func heldAcks(s *Server) int {
	return sumConns(s, func(c *conn) int { return len(c.acks) / pingAckSize })
}

// sumConns sums f over the server's connections, each with c.mu held.
func sumConns(s *Server, f func(*conn) int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		c.mu.Lock()
		n += f(c)
		c.mu.Unlock()
	}
	return n
}

// A PING's acknowledgment waits for the connection's next answer and
// follows it, in the same write.
func TestAPingAcknowledgmentFollowsTheNextAnswer(t *testing.T) {
	gate := make(chan struct{})
	f := start(t, Config{ackDelay: time.Hour, Unary: map[string]Unary{echoMethod: func(ctx context.Context, b []byte) (Message, error) {
		<-gate
		return echo(ctx, b)
	}}})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before Stop, which waits for the handler
	r := dialRaw(t, f.addr)
	r.settled()
	b := r.request(1)
	if err := r.write(append(b, ping("pingpong")...)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); heldAcks(f.srv) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server did not hold the PING's acknowledgment")
		}
	}
	release()
	answered := false
	r.readUntil("no acknowledgment of the PING: %v", func(fm http2.Frame) bool {
		switch fm := fm.(type) {
		case *http2.MetaHeadersFrame:
			answered = answered || fm.StreamID == 1 && fm.StreamEnded()
		case *http2.PingFrame:
			if !fm.IsAck() || string(fm.Data[:]) != "pingpong" {
				t.Fatalf("got PING ack=%v %q, want the acknowledgment of \"pingpong\"", fm.IsAck(), fm.Data[:])
			}
			if !answered {
				t.Fatal("the PING was acknowledged before the answer it waits for")
			}
			return true
		}
		return false
	})
}

// With nothing written, a PING is acknowledged at ackDelay, not before;
// and maxHeldAcks of them are acknowledged at once.
func TestAPingIsAcknowledgedWithinAckDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	f := start(t, Config{ackDelay: delay})
	r := dialRaw(t, f.addr)
	r.settled()
	begin := time.Now()
	if err := r.write(ping("one ping")); err != nil {
		t.Fatal(err)
	}
	r.readUntil("no acknowledgment of the PING: %v", func(fm http2.Frame) bool {
		p, ok := fm.(*http2.PingFrame)
		return ok && p.IsAck() && string(p.Data[:]) == "one ping"
	})
	if d := time.Since(begin); d < delay {
		t.Fatalf("acknowledged after %v, before ackDelay (%v)", d, delay)
	}

	f = start(t, Config{ackDelay: time.Hour})
	r = dialRaw(t, f.addr)
	r.settled()
	var b []byte
	for i := range maxHeldAcks {
		b = append(b, ping(fmt.Sprintf("ping %3d", i))...)
	}
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	n := 0
	r.readUntil("the server held on to a full set of acknowledgments: %v", func(fm http2.Frame) bool {
		if p, ok := fm.(*http2.PingFrame); ok && p.IsAck() {
			if want := fmt.Sprintf("ping %3d", n); string(p.Data[:]) != want {
				t.Fatalf("acknowledgment %d carries %q, want %q", n, p.Data[:], want)
			}
			n++
		}
		return n == maxHeldAcks
	})
}
