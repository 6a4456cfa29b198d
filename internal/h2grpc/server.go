// Package h2grpc serves gRPC over HTTP/2 with a short path for the unary
// methods a server names: their requests are decoded, handled and answered
// on this package's own HTTP/2 connection code, without gRPC-go's stream
// machinery. Every other call (streams, methods not named, requests with
// compression) is handed whole to a fallback http.Handler, normally
// (*grpc.Server).ServeHTTP, through an http.ResponseWriter that writes onto
// the same connection.
//
// Each connection has two goroutines: a reader, which parses frames and
// starts calls, and a writer, which copies the bytes queued by everything
// else to the socket in as few writes as it can. Both stop when the
// connection closes; Stop closes every connection and waits for them and
// for the calls they started. A Unary call runs on a worker goroutine; an
// Async one is started on the reader and answered from wherever its
// outcome is learnt, holding no goroutine meanwhile.
//
// Flow control: the client's connection window is credited back as bytes
// arrive. What one connection can make the server hold (unary requests not
// yet whole, fallback bodies not yet read) is bounded by maxHeld instead: a
// stream that would pass it is refused with REFUSED_STREAM, which gRPC
// clients retry. A unary request must fit in its stream's window
// (Config.StreamWindow), which is why that window must exceed the largest
// request accepted; a fallback stream's window is credited as its body is
// read. Responses respect the client's windows, and no more than maxQueued
// bytes wait for the socket.
//
// A PING is acknowledged with the connection's next write, or ackDelay
// after it came: gRPC clients send one after nearly every answer, and an
// acknowledgment written on its own would cost a write per answer. A
// client that times round trips with PINGs sees up to ackDelay more on a
// quiet connection.
package h2grpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// preface is what every HTTP/2 client sends first.
	preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// defaultWindow and defaultFrame are HTTP/2's initial values.
	defaultWindow = 65535
	defaultFrame  = 16384
	// maxStreams bounds the open streams of one connection.
	maxStreams = 4096
	// maxHeaderList bounds a request's decoded header fields.
	maxHeaderList = 1 << 20
	// maxHeld bounds the request bytes one connection's streams may
	// buffer (unary requests not yet whole, bodies not yet read); a
	// stream that would pass it is refused.
	maxHeld = 64 << 20
	// maxQueued is how many bytes may wait for the socket before senders
	// wait for the writer.
	maxQueued = 1 << 20
	// handshakeTimeout bounds the TLS handshake and the client's preface.
	handshakeTimeout = 10 * time.Second
	// goAwayLinger is how long a connection that failed waits for its
	// GOAWAY frame to be written before it closes.
	goAwayLinger = time.Second
	// ackDelay is how long a PING's acknowledgment may wait for the
	// connection's next write (see holdAck), and maxHeldAcks how many
	// may wait at once.
	ackDelay    = 10 * time.Millisecond
	maxHeldAcks = 16
	// pingAckSize is a PING acknowledgment's size on the wire.
	pingAckSize = 9 + 8
	// maxAnswerNow bounds the Async answers queued without waiting (see
	// Answer), for a client whose frames may be larger.
	maxAnswerNow = 64 << 10
)

// ErrStopped is returned by Serve once Stop has been called.
var ErrStopped = errors.New("h2grpc: server stopped")

// Message is a response the short path can encode: the methods that the
// generated code of gogo-protobuf gives every message.
type Message interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// Unary handles one unary call. req is the request message's encoding,
// owned by the handler. A non-nil error is turned into the call's status
// (see StatusOf).
type Unary func(ctx context.Context, req []byte) (Message, error)

// Async starts one unary call without a goroutine of its own: it runs on
// the connection's reader, so it must not wait (the connection's other
// streams would go unread meanwhile: hand waiting to Continue), and it ends
// the call through call, at once or later, from any goroutine. req is as
// for Unary. The goroutine a Unary call would hold while it waits costs
// two switches (to the worker and back from what it waits for), a good
// part of a request's CPU.
type Async func(ctx context.Context, req []byte, call Call)

// Call ends an Async call: exactly one of its methods is called, once. It
// may be called after the connection closed, or after Stop returned (Stop
// does not wait for Async calls, which hold no goroutine): it then does
// nothing.
type Call interface {
	// Answer answers with m, or with err's status if err is not nil. It
	// does not wait: an answer the client's window cannot take at once
	// is written by a goroutine of the server's.
	Answer(m Message, err error)
	// Continue answers with what fn returns, calling it on a goroutine of
	// the server's: for the rare call that must wait after all.
	Continue(fn func() (Message, error))
}

// Config configures a Server.
type Config struct {
	// Unary maps full method names ("/package.Service/Method") to the
	// handlers of the short path.
	Unary map[string]Unary
	// Async maps full method names to the short path's handlers that need
	// no goroutine of their own; a name must not be in Unary too.
	Async map[string]Async
	// Fallback serves every other request: normally a grpc.Server, whose
	// stream interceptor must then be StreamInterceptor.
	Fallback http.Handler
	// MaxRecvMsgSize is the largest request message accepted on the short
	// path, in bytes.
	MaxRecvMsgSize int
	// StreamWindow is the flow-control window of each stream, larger than
	// MaxRecvMsgSize plus gRPC's 5-byte message prefix.
	StreamWindow uint32
	// ConnWindow is the flow-control window of each connection.
	ConnWindow uint32
	// Workers is how many long-lived goroutines run short-path calls; a
	// call that finds none idle gets a goroutine of its own.
	Workers int
	// TLS, when set, serves TLS on every connection (with ALPN "h2").
	TLS *tls.Config
	// Logger receives connection errors worth knowing about.
	Logger *slog.Logger

	// ackDelay replaces the const of that name in tests.
	ackDelay time.Duration
}

// Server serves gRPC on listeners. Its zero value is not usable: use New.
type Server struct {
	cfg  Config
	work chan *stream
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	lns     map[net.Listener]struct{}
	conns   map[*conn]struct{}
}

// New returns a server for cfg, its workers started.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Fallback == nil:
		return nil, errors.New("h2grpc: Config.Fallback is nil")
	case cfg.MaxRecvMsgSize <= 0:
		return nil, errors.New("h2grpc: Config.MaxRecvMsgSize must be positive")
	case uint64(cfg.StreamWindow) < uint64(cfg.MaxRecvMsgSize)+5 || cfg.StreamWindow > 1<<31-1:
		return nil, fmt.Errorf("h2grpc: Config.StreamWindow %d must hold a request of MaxRecvMsgSize %d (plus 5) and be under 2^31", cfg.StreamWindow, cfg.MaxRecvMsgSize)
	case cfg.ConnWindow < defaultWindow || cfg.ConnWindow > 1<<31-1:
		return nil, fmt.Errorf("h2grpc: Config.ConnWindow %d must be in [65535, 2^31)", cfg.ConnWindow)
	}
	for m := range cfg.Async {
		if cfg.Unary[m] != nil {
			return nil, fmt.Errorf("h2grpc: method %s is in both Config.Unary and Config.Async", m)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ackDelay == 0 {
		cfg.ackDelay = ackDelay
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.NextProtos = []string{"h2"}
	}
	s := &Server{
		cfg:   cfg,
		work:  make(chan *stream),
		done:  make(chan struct{}),
		lns:   make(map[net.Listener]struct{}),
		conns: make(map[*conn]struct{}),
	}
	s.wg.Add(cfg.Workers)
	for range cfg.Workers {
		go s.worker()
	}
	return s, nil
}

func (s *Server) worker() {
	defer s.wg.Done()
	for {
		select {
		case st := <-s.work:
			st.c.runUnary(st)
		case <-s.done:
			return
		}
	}
}

// Serve accepts connections on ln until ln fails or Stop is called; it
// then returns the error, or ErrStopped after Stop. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		ln.Close()
		return ErrStopped
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var pause time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			stopped := s.stopped
			s.mu.Unlock()
			if stopped {
				return ErrStopped
			}
			if isTemporary(err) {
				// Out of file descriptors and the like: wait and retry.
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(pause):
					continue
				case <-s.done:
					return ErrStopped
				}
			}
			return err
		}
		pause = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			nc.Close()
			return ErrStopped
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// isTemporary reports whether an Accept error may pass (EMFILE, ENFILE,
// ENOBUFS, timeouts), as net/http and gRPC-go judge it.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Stop closes the listeners and every connection, cancelling the calls in
// flight, and waits until every goroutine the server started has returned.
func (s *Server) Stop() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.done)
	}
	for ln := range s.lns {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
}

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	tls    *tls.ConnectionState
	kick   chan struct{} // something was queued for the writer
	wrote  chan struct{} // closed when the writer returns

	// Owned by the reader goroutine.
	fr     *http2.Framer
	dec    *hpack.Decoder
	blk    headerBlock // the header block being read
	lastID uint32

	mu         sync.Mutex
	space      *sync.Cond // a send window opened, the queue drained, or the connection closed
	closed     bool
	goingAway  bool // a GOAWAY is queued; close once it is written
	running    int  // handlers started and not yet returned
	streams    map[uint32]*stream
	queue      []byte // bytes for the socket, in order
	spare      []byte // the writer's last buffer, for reuse
	sendWindow int64  // the connection's send window
	peerWindow int64  // the client's initial stream window
	maxFrame   int    // the largest frame payload the client accepts
	recvLeft   int64  // how much the client may still send before a WINDOW_UPDATE
	credit     uint32 // bytes received, not yet sent as a WINDOW_UPDATE
	held       int64  // request bytes buffered: partial unary requests, unread bodies
	hbuf       bytes.Buffer
	enc        *hpack.Encoder
	memo       blockMemo
	acks       []byte      // PING acknowledgments waiting for a write (see holdAck)
	ackTimer   *time.Timer // sends acks at ackDelay; nil until the first PING
}

// blockMemo holds the short path's usual header blocks as enc last encoded
// them, while they are valid: only while they consist of indexed fields
// and the encoder's table has not changed since. Every use of enc goes
// through conn.writeField, which clears it unless the field came out as an
// index. A block so kept saves the encoder's table search on every answer,
// and the client decodes the same bytes either way.
type blockMemo struct {
	contentType string
	headers     []byte // :status 200 and content-type, for contentType
	ok          []byte // grpc-status 0
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		remote:     nc.RemoteAddr().String(),
		kick:       make(chan struct{}, 1),
		wrote:      make(chan struct{}),
		streams:    make(map[uint32]*stream),
		sendWindow: defaultWindow,
		recvLeft:   int64(s.cfg.ConnWindow),
		peerWindow: defaultWindow,
		maxFrame:   defaultFrame,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.space = sync.NewCond(&c.mu)
	c.enc = hpack.NewEncoder(&c.hbuf)
	return c
}

// serve is the connection's reader goroutine.
func (c *conn) serve() {
	defer c.s.wg.Done()
	defer func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	defer c.close()
	if err := c.handshake(); err != nil {
		c.s.cfg.Logger.Debug("h2grpc: handshake failed", "remote", c.remote, "err", err)
		return
	}
	c.s.wg.Add(1)
	go c.writeLoop()
	c.mu.Lock()
	c.queueSettings()
	c.mu.Unlock()
	c.wake()
	err := c.readLoop() // never nil
	code := http2.ErrCodeProtocol
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		code = http2.ErrCode(ce)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.s.cfg.Logger.Debug("h2grpc: connection failed", "remote", c.remote, "err", err)
		c.goAway(code)
	}
}

func (c *conn) handshake() error {
	c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if c.s.cfg.TLS != nil {
		tc := tls.Server(c.nc, c.s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return err
		}
		state := tc.ConnectionState()
		c.tls = &state
		c.mu.Lock()
		c.nc = tc
		c.mu.Unlock()
	}
	var p [len(preface)]byte
	if _, err := io.ReadFull(c.nc, p[:]); err != nil {
		return err
	}
	if string(p[:]) != preface {
		return fmt.Errorf("not an HTTP/2 client preface: %q", p[:])
	}
	c.nc.SetDeadline(time.Time{})
	c.fr = http2.NewFramer(io.Discard, bufio.NewReaderSize(c.nc, 32<<10))
	// Header blocks are decoded here rather than by the Framer, into a
	// slice the connection reuses (see emit).
	c.dec = hpack.NewDecoder(4096, c.emit)
	c.dec.SetMaxStringLength(maxHeaderList)
	c.fr.SetMaxReadFrameSize(defaultFrame) // the size the SETTINGS leave in force
	c.fr.SetReuseFrames()                  // DATA frames are copied out at once
	return nil
}

// queueSettings queues the server's SETTINGS and widens the connection
// window. c.mu is held.
func (c *conn) queueSettings() {
	b := appendFrameHeader(c.queue, 3*6, http2.FrameSettings, 0, 0)
	b = appendSetting(b, http2.SettingMaxConcurrentStreams, maxStreams)
	b = appendSetting(b, http2.SettingInitialWindowSize, c.s.cfg.StreamWindow)
	b = appendSetting(b, http2.SettingMaxHeaderListSize, maxHeaderList)
	if w := c.s.cfg.ConnWindow; w > defaultWindow {
		b = appendWindowUpdate(b, 0, w-defaultWindow)
	}
	c.queue = b
}

func (c *conn) readLoop() error {
	first := true
	for {
		// A client that sends faster than it reads waits here, so the
		// frames its own frames call for (acknowledgments, resets,
		// window updates) cannot pile up past maxQueued.
		c.mu.Lock()
		for len(c.queue) >= maxQueued && !c.closed {
			c.wake()
			c.space.Wait()
		}
		c.mu.Unlock()
		fh, err := c.fr.ReadFrameHeader()
		var f http2.Frame
		if err == nil {
			f, err = c.fr.ReadFrameForHeader(fh)
		}
		if err != nil {
			var se http2.StreamError
			if !errors.As(err, &se) {
				return err
			}
			// Two stream errors cannot be answered with RST_STREAM. A
			// malformed HEADERS frame's header block is never decoded,
			// and the decoder must see every block to stay in step with
			// the client's encoder. And RST_STREAM must not be sent for
			// an idle stream: only the client's HEADERS opens one (this
			// server pushes none, so every even stream is idle).
			if fh.Type == http2.FrameHeaders || se.StreamID%2 == 0 || se.StreamID > c.lastID {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			c.refuse(se.StreamID, se.Code)
			continue
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			first = false
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			c.blk = headerBlock{StreamID: f.StreamID, end: f.StreamEnded(), Fields: c.blk.Fields[:0]}
			err = c.onFragment(f.HeaderBlockFragment(), f.HeadersEnded())
		case *http2.ContinuationFrame:
			// The Framer checks that it continues the open block.
			err = c.onFragment(f.HeaderBlockFragment(), f.HeadersEnded())
		case *http2.DataFrame:
			err = c.onData(f)
		case *http2.SettingsFrame:
			err = c.onSettings(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				c.holdAck(f.Data)
			}
		case *http2.WindowUpdateFrame:
			err = c.onWindowUpdate(f)
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			if st := c.streams[f.StreamID]; st != nil {
				c.endLocked(st)
			}
			c.mu.Unlock()
		case *http2.PushPromiseFrame:
			err = http2.ConnectionError(http2.ErrCodeProtocol)
		case *http2.GoAwayFrame:
			// The client opens no more streams; those open finish.
		}
		if err != nil {
			return err
		}
	}
}

// holdAck acknowledges a PING with the connection's next write, or at
// ackDelay if nothing is written before then.
//
// gRPC-go's client sends a PING after nearly every answer it receives
// (its flow-control window estimate), so on a busy connection an
// acknowledgment sent at once costs a write of its own per answer, here
// and a read in the client. Held, it rides behind the next answers,
// in the same write. The client also sends fewer: its next PING waits
// for the acknowledgment, which it reads after those answers.
func (c *conn) holdAck(data [8]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks = appendFrameHeader(c.acks, 8, http2.FramePing, http2.FlagPingAck, 0)
	c.acks = append(c.acks, data[:]...)
	switch {
	case len(c.acks) >= maxHeldAcks*pingAckSize:
		c.sendAcksLocked()
		c.wake()
	case len(c.acks) == pingAckSize:
		if c.ackTimer == nil {
			c.ackTimer = time.AfterFunc(c.s.cfg.ackDelay, c.acksDue)
		} else {
			c.ackTimer.Reset(c.s.cfg.ackDelay)
		}
	}
}

// acksDue sends the held acknowledgments: nothing else was written within
// ackDelay of the first.
func (c *conn) acksDue() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.acks) > 0 && !c.closed {
		c.sendAcksLocked()
		c.wake()
	}
}

// sendAcksLocked moves the held acknowledgments to the queue. c.mu is held.
func (c *conn) sendAcksLocked() {
	c.queue = append(c.queue, c.acks...)
	c.acks = c.acks[:0]
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				if st.sendWindow+delta > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.sendWindow += delta
			}
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSizeLimit(s.Val)
			c.memo = blockMemo{} // the table may shrink
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.queue = appendFrameHeader(c.queue, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	c.space.Broadcast()
	c.wake()
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if c.sendWindow+inc > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.sendWindow += inc
	} else if st := c.streams[f.StreamID]; st != nil {
		if st.sendWindow+inc > 1<<31-1 {
			c.resetLocked(st, http2.ErrCodeFlowControl)
			return nil
		}
		st.sendWindow += inc
	}
	c.space.Broadcast()
	return nil
}

// headerBlock is a request's header block as the reader decodes it.
type headerBlock struct {
	StreamID  uint32
	Fields    []hpack.HeaderField
	Truncated bool // the list passed maxHeaderList; Fields is incomplete
	end       bool // the HEADERS frame ended the stream
	invalid   bool // a field is malformed, or a pseudo-header follows a field
	regular   bool // a regular field was seen
	size      int  // the list's size as HTTP/2 counts it
}

func (b *headerBlock) StreamEnded() bool { return b.end }

// emit adds a decoded field to the open block, checking it as net/http's
// HTTP/2 server does. It runs on the reader goroutine.
func (c *conn) emit(hf hpack.HeaderField) {
	b := &c.blk
	if b.Truncated || b.invalid {
		return
	}
	if b.size += len(hf.Name) + len(hf.Value) + 32; b.size > maxHeaderList {
		b.Truncated = true
		return
	}
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		b.invalid = true
		return
	}
	if strings.HasPrefix(hf.Name, ":") {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
		default:
			b.invalid = true
		}
		if b.regular {
			b.invalid = true
		}
	} else {
		b.regular = true
		if !httpguts.ValidHeaderFieldName(hf.Name) || strings.ToLower(hf.Name) != hf.Name {
			b.invalid = true
		}
	}
	b.Fields = append(b.Fields, hf)
}

// onFragment decodes a piece of the open header block and, at its end,
// handles it.
func (c *conn) onFragment(frag []byte, ended bool) error {
	if _, err := c.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !ended {
		return nil
	}
	if err := c.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if b := &c.blk; b.invalid {
		if b.StreamID%2 == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream: no RST_STREAM
		}
		if b.StreamID > c.lastID {
			c.lastID = b.StreamID // a rejected request still opened its stream
		}
		c.refuse(b.StreamID, http2.ErrCodeProtocol)
		return nil
	}
	return c.onHeaders(&c.blk)
}

func (c *conn) onHeaders(f *headerBlock) error {
	id := f.StreamID
	c.mu.Lock()
	st := c.streams[id]
	n := max(len(c.streams), c.running)
	c.mu.Unlock()
	if st != nil {
		// Trailers: a client sends them only to end its half of a stream.
		if !f.StreamEnded() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.endRequest(st)
		return nil
	}
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if id <= c.lastID {
		// A stream that has ended: what the client sent before it
		// learned so is ignored.
		return nil
	}
	c.lastID = id
	if n >= maxStreams {
		// Streams open, or handlers still running for streams the
		// client reset: either way, no more until some finish.
		c.refuse(id, http2.ErrCodeRefusedStream)
		return nil
	}
	if f.Truncated {
		c.refuse(id, http2.ErrCodeProtocol) // its header list passed maxHeaderList
		return nil
	}
	st = &stream{c: c, id: id}
	var encoding, timeout string
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			st.method = hf.Value
		case ":path":
			st.path = hf.Value
		case ":authority":
			st.authority = hf.Value
		case "content-type":
			st.contentType = hf.Value
		case "grpc-encoding":
			encoding = hf.Value
		case "grpc-timeout":
			timeout = hf.Value
		}
	}
	if st.method == "" || st.path == "" {
		c.refuse(id, http2.ErrCodeProtocol)
		return nil
	}
	h, a := c.s.cfg.Unary[st.path], c.s.cfg.Async[st.path]
	if h == nil && a == nil || st.method != http.MethodPost || !isGRPC(st.contentType) || (encoding != "" && encoding != "identity") {
		return c.startFallback(st, f)
	}
	st.unary, st.async = h, a
	st.short = true
	if timeout != "" {
		d, ok := parseTimeout(timeout)
		if !ok {
			st.ctx, st.cancel = context.WithCancel(context.Background())
			c.register(st)
			c.finishStatus(st, codeInternal, "malformed grpc-timeout: "+timeout)
			return nil
		}
		st.ctx, st.cancel = context.WithTimeout(context.Background(), d)
		c.mu.Lock()
		// The handler's context carries the deadline once the call
		// starts; until then a request whose last bytes never come
		// would hold its stream past it. The timer exists before the
		// stream is registered, so that every end of the stream stops
		// it, and fires no sooner than c.mu is released.
		st.expire = time.AfterFunc(d, func() { c.expireRequest(st) })
		c.registerLocked(st)
		c.mu.Unlock()
	} else {
		st.ctx, st.cancel = context.WithCancel(context.Background())
		c.register(st)
	}
	if f.StreamEnded() {
		c.endRequest(st)
	}
	return nil
}

func (c *conn) register(st *stream) {
	c.mu.Lock()
	c.registerLocked(st)
	c.mu.Unlock()
}

// registerLocked adds a stream to the connection's. A short-path stream's
// context is not derived from the connection's (registering a child with
// it and removing it again cost a few percent of a busy member's CPU):
// endLocked cancels it, and close ends every registered stream.
func (c *conn) registerLocked(st *stream) {
	st.sendWindow = c.peerWindow
	c.streams[st.id] = st
	if c.closed {
		c.endLocked(st)
	}
}

func (c *conn) onData(f *http2.DataFrame) error {
	data := f.Data()
	c.mu.Lock()
	c.recvLeft -= int64(f.Length)
	if c.recvLeft < 0 {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	// The connection window is credited as bytes arrive: what a
	// connection may hold is bounded by maxHeld instead, so that requests
	// waiting for their last bytes cannot use up the window and stall.
	c.creditLocked(int(f.Length))
	st := c.streams[f.StreamID]
	if st == nil || st.done || st.reqDone {
		c.mu.Unlock()
		if st == nil && f.StreamID > c.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	st.received += int64(len(data))
	st.credit += f.Length - uint32(len(data)) // padding is the stream's window too
	c.held += int64(len(data))
	if st.received-st.consumed > int64(c.s.cfg.StreamWindow) {
		c.resetLocked(st, http2.ErrCodeFlowControl)
		c.mu.Unlock()
		return nil
	}
	if c.held > maxHeld {
		c.resetLocked(st, http2.ErrCodeRefusedStream)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if !st.short {
		st.body.push(data)
	} else if !st.tooLarge {
		if st.req == nil && len(data) >= 5 {
			// The first frame usually holds the message's prefix,
			// which sizes the buffer: up to what arrived or 64 KiB,
			// so that a prefix alone cannot claim memory.
			n := binary.BigEndian.Uint32(data[1:5])
			if uint64(n) <= uint64(c.s.cfg.MaxRecvMsgSize) {
				st.req = make([]byte, 0, max(len(data), min(5+int(n), 64<<10)))
			}
		}
		st.req = append(st.req, data...)
		if len(st.req) >= 5 {
			if n := binary.BigEndian.Uint32(st.req[1:5]); uint64(n) > uint64(c.s.cfg.MaxRecvMsgSize) {
				st.tooLarge = true
				st.req = nil
				c.finishStatus(st, codeResourceExhausted, fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", n, c.s.cfg.MaxRecvMsgSize))
				return nil
			}
		}
	}
	if f.StreamEnded() {
		c.endRequest(st)
	}
	return nil
}

// endRequest handles the end of a request's half of a stream: a unary call
// starts; a fallback body reaches EOF.
func (c *conn) endRequest(st *stream) {
	var bad string // why a unary request cannot be called
	if b := st.req; st.short {
		switch {
		case len(b) < 5:
			bad = "grpc: the request message is missing"
		case b[0] != 0:
			bad = "grpc: compressed flag set with identity or empty encoding"
		case int(binary.BigEndian.Uint32(b[1:5])) != len(b)-5:
			bad = fmt.Sprintf("grpc: a unary request must hold one message of the length it declares (%d), not %d bytes", binary.BigEndian.Uint32(b[1:5]), len(b)-5)
		}
	}
	c.mu.Lock()
	if st.reqDone || st.done {
		c.mu.Unlock()
		return
	}
	st.reqDone = true
	if st.expire != nil && st.async == nil {
		st.expire.Stop() // the handler's context has the deadline
	}
	if st.short && bad == "" {
		c.releaseLocked(st, st.received-st.consumed)
		c.running++
	}
	c.mu.Unlock()
	switch {
	case !st.short:
		st.body.end(io.EOF)
		return
	case bad != "":
		c.finishStatus(st, codeInternal, bad)
		return
	}
	st.req = st.req[5:]
	if st.async != nil {
		req := st.req
		st.req = nil
		st.async(st.ctx, req, st)
		return
	}
	c.dispatch(st)
}

// dispatch runs a short-path call on an idle worker or a goroutine of its
// own. It is called on the reader, or with the connection open and c.mu
// held (see Continue), so that Stop waits for what it starts.
func (c *conn) dispatch(st *stream) {
	select {
	case c.s.work <- st:
	default:
		c.s.wg.Add(1)
		go func() {
			defer c.s.wg.Done()
			c.runUnary(st)
		}()
	}
}

// Answer implements Call.
func (st *stream) Answer(m Message, err error) {
	c := st.c
	if err != nil {
		c.handlerDone()
		code, msg, details := statusParts(err)
		c.finish(st, code, msg, details)
		return
	}
	buf, ok := c.encode(st, m)
	if !ok {
		c.handlerDone()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.done {
		c.running--
		return
	}
	n := int64(len(buf))
	if n <= int64(min(c.maxFrame, maxAnswerNow)) && n <= c.sendWindow && n <= st.sendWindow && len(c.queue) < maxQueued && st.ctx.Err() == nil {
		// The windows take it whole, in one frame: queued without
		// waiting, though it may take the queue past maxQueued by up to
		// that frame (at most maxAnswerNow).
		c.running--
		c.queueAnswerLocked(st, buf, false)
		return
	}
	if err := st.ctx.Err(); err != nil {
		// Its deadline passed, and expireRequest is about to say so.
		c.running--
		c.finishLocked(st, codeDeadlineExceeded, err.Error(), nil)
		return
	}
	// The client's window must open first: a goroutine waits for it. The
	// stream is not done, so the connection is open (close ends every
	// stream); with c.mu held its reader has not returned, and Stop waits
	// for this goroutine too.
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		defer c.handlerDone()
		c.mu.Lock()
		c.queueAnswerLocked(st, buf, true)
		c.mu.Unlock()
	}()
}

// Continue implements Call.
func (st *stream) Continue(fn func() (Message, error)) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.done {
		// Reset, or the connection closed (close ends every stream):
		// nothing can be written, and fn is not called.
		c.running--
		return
	}
	st.cont = fn
	c.dispatch(st)
}

// handlerDone records that a handler this connection started returned.
func (c *conn) handlerDone() {
	c.mu.Lock()
	c.running--
	c.mu.Unlock()
}

// runUnary calls a short-path handler (or an Async call's continuation)
// and writes its answer.
func (c *conn) runUnary(st *stream) {
	defer c.handlerDone()
	var resp Message
	var err error
	if st.cont != nil {
		resp, err = st.cont()
		st.cont = nil
	} else {
		resp, err = st.unary(st.ctx, st.req)
		st.req = nil
	}
	if err != nil {
		code, msg, details := statusParts(err)
		c.finish(st, code, msg, details)
		return
	}
	buf, ok := c.encode(st, resp)
	if !ok {
		return
	}
	c.mu.Lock()
	c.queueAnswerLocked(st, buf, true)
	c.mu.Unlock()
}

// encode encodes a short-path answer with gRPC's message prefix. If it
// cannot, it ends the call with INTERNAL and reports false.
func (c *conn) encode(st *stream, m Message) ([]byte, bool) {
	size := m.Size()
	buf := make([]byte, 5+size)
	binary.BigEndian.PutUint32(buf[1:5], uint32(size))
	if n, err := m.MarshalToSizedBuffer(buf[5:]); err != nil || n != size {
		c.finishStatus(st, codeInternal, fmt.Sprintf("grpc: error while marshaling the response: %v", err))
		return nil, false
	}
	return buf, true
}

// queueAnswerLocked queues a short-path answer: headers, the message and
// trailers. With wait, it waits for the client's windows and for queue
// space as it must, releasing c.mu meanwhile. Without, the caller has
// seen that the windows take the message in one frame, and it is queued
// however full the queue is. c.mu is held.
func (c *conn) queueAnswerLocked(st *stream, buf []byte, wait bool) {
	if st.done {
		return
	}
	c.queueHeadersLocked(st, false)
	if !wait {
		c.appendDataLocked(st, buf)
	} else if err := c.sendDataLocked(st, buf); err != nil {
		// The deadline passed (or the call was cancelled) while the
		// answer waited for the client's window: the client must learn
		// the stream is over.
		c.resetLocked(st, http2.ErrCodeCancel)
		return
	}
	c.queueTrailersLocked(st, code0, "", nil)
	c.endLocked(st)
}

// finishStatus answers a short-path call with a status and no message.
func (c *conn) finishStatus(st *stream, code uint32, msg string) {
	c.finish(st, code, msg, nil)
}

func (c *conn) finish(st *stream, code uint32, msg string, details []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishLocked(st, code, msg, details)
}

// expireRequest ends a short-path call whose deadline passed while its
// request was still arriving, as gRPC-go does: DEADLINE_EXCEEDED, and
// RST_STREAM to stop the client sending. An Async call not yet answered
// ends so too, without the RST_STREAM: its answer, when it comes, is
// dropped.
func (c *conn) expireRequest(st *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.reqDone && st.async == nil {
		return // the handler runs, and its context has the deadline
	}
	c.finishLocked(st, codeDeadlineExceeded, context.DeadlineExceeded.Error(), nil)
}

// finishLocked is finish with c.mu held.
func (c *conn) finishLocked(st *stream, code uint32, msg string, details []byte) {
	if st.done {
		return
	}
	c.queueTrailersOnlyLocked(st, code, msg, details)
	if !st.reqDone {
		// The client may still be sending: tell it to stop.
		c.queue = appendRST(c.queue, st.id, http2.ErrCodeNo)
	}
	c.endLocked(st)
}

// endLocked forgets a stream whose response is complete or that was reset,
// cancelling its context. c.mu is held.
func (c *conn) endLocked(st *stream) {
	if st.done {
		return
	}
	st.done = true
	delete(c.streams, st.id)
	if st.expire != nil {
		st.expire.Stop()
	}
	if st.cancel != nil {
		st.cancel()
	}
	if st.body != nil {
		st.body.end(errStreamReset)
	}
	// The bytes the stream still holds will not be handed on.
	c.releaseLocked(st, st.received-st.consumed)
	c.space.Broadcast()
	c.wake()
}

// resetLocked ends a stream with RST_STREAM. c.mu is held.
func (c *conn) resetLocked(st *stream, code http2.ErrCode) {
	c.queue = appendRST(c.queue, st.id, code)
	c.endLocked(st)
}

// refuse resets a stream the connection does not track.
func (c *conn) refuse(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		c.resetLocked(st, code)
	} else {
		c.queue = appendRST(c.queue, id, code)
		c.wake()
	}
	c.mu.Unlock()
}

// creditLocked returns n received bytes to the client's connection
// window, sending a WINDOW_UPDATE once a quarter of the window is due. c.mu
// is held.
func (c *conn) creditLocked(n int) {
	if n <= 0 {
		return
	}
	c.credit += uint32(n)
	if c.credit >= c.s.cfg.ConnWindow/4 {
		c.queue = appendWindowUpdate(c.queue, 0, c.credit)
		c.recvLeft += int64(c.credit)
		c.credit = 0
		c.wake()
	}
}

// releaseLocked records that n bytes st buffered were handed on or
// dropped. c.mu is held.
func (c *conn) releaseLocked(st *stream, n int64) {
	c.held -= n
	st.consumed += n
}

// queueHeadersLocked queues a short-path stream's response headers. c.mu
// is held.
func (c *conn) queueHeadersLocked(st *stream, end bool) {
	c.hbuf.Reset()
	if m := &c.memo; m.headers != nil && m.contentType == st.contentType {
		c.hbuf.Write(m.headers)
	} else {
		c.headerFields(st)
		if b := c.hbuf.Bytes(); allIndexed(b) {
			c.memo.contentType, c.memo.headers = st.contentType, bytes.Clone(b)
		}
	}
	c.queueBlockLocked(st.id, end)
}

// headerFields encodes a short-path answer's headers: the request's own
// gRPC content-type.
func (c *conn) headerFields(st *stream) {
	c.writeField(":status", "200")
	c.writeField("content-type", st.contentType)
}

func (c *conn) queueTrailersLocked(st *stream, code uint32, msg string, details []byte) {
	c.hbuf.Reset()
	ok := code == code0 && msg == "" && len(details) == 0
	if ok && c.memo.ok != nil {
		c.hbuf.Write(c.memo.ok)
	} else {
		c.statusFields(code, msg, details)
		if b := c.hbuf.Bytes(); ok && allIndexed(b) {
			c.memo.ok = bytes.Clone(b)
		}
	}
	c.queueBlockLocked(st.id, true)
}

func (c *conn) queueTrailersOnlyLocked(st *stream, code uint32, msg string, details []byte) {
	c.hbuf.Reset()
	c.headerFields(st)
	c.statusFields(code, msg, details)
	c.queueBlockLocked(st.id, true)
}

func (c *conn) statusFields(code uint32, msg string, details []byte) {
	c.writeField("grpc-status", codeString(code))
	if msg != "" {
		c.writeField("grpc-message", encodeMessage(msg))
	}
	if len(details) > 0 {
		c.writeField("grpc-status-details-bin", encodeBinary(details))
	}
}

// writeField encodes a field into c.hbuf. Unless the field came out as
// an index, the encoder's table may have changed, and the blocks kept in
// c.memo are forgotten. c.mu is held.
func (c *conn) writeField(name, value string) {
	n := c.hbuf.Len()
	c.enc.WriteField(hpack.HeaderField{Name: name, Value: value})
	if !allIndexed(c.hbuf.Bytes()[n:]) {
		c.memo = blockMemo{}
	}
}

// allIndexed reports whether a header block is only indexed fields of
// one byte each (RFC 7541 section 6.1), so that it did not change the
// encoder's table.
func allIndexed(b []byte) bool {
	for _, x := range b {
		if x&0x80 == 0 || x == 0xff {
			return false
		}
	}
	return len(b) > 0
}

// queueBlockLocked queues the header block in c.hbuf as a HEADERS frame
// and as many CONTINUATION frames as the client's frame size needs.
func (c *conn) queueBlockLocked(id uint32, end bool) {
	block := c.hbuf.Bytes()
	flags := http2.Flags(0)
	if end {
		flags |= http2.FlagHeadersEndStream
	}
	typ := http2.FrameHeaders
	for {
		n := min(len(block), c.maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		c.queue = appendFrameHeader(c.queue, n, typ, f, id)
		c.queue = append(c.queue, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			break
		}
		typ, flags = http2.FrameContinuation, 0
	}
	c.wake()
}

// sendDataLocked queues p as DATA frames on st, waiting for the client's
// windows and for queue space as it must. c.mu is held; it is released
// while waiting.
func (c *conn) sendDataLocked(st *stream, p []byte) error {
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for len(p) > 0 {
		n := int64(min(len(p), c.maxFrame))
		n = min(n, c.sendWindow, st.sendWindow)
		if c.closed || st.done {
			return errStreamReset
		}
		if err := st.ctx.Err(); err != nil {
			return err
		}
		if n <= 0 || len(c.queue) >= maxQueued {
			if stop == nil {
				// Waiting for the client's window: the stream's
				// deadline or cancellation must end the wait.
				stop = context.AfterFunc(st.ctx, func() {
					c.mu.Lock()
					c.space.Broadcast()
					c.mu.Unlock()
				})
			}
			c.space.Wait()
			continue
		}
		c.appendDataLocked(st, p[:n])
		p = p[n:]
	}
	return nil
}

// appendDataLocked queues p as one DATA frame on st, which the client's
// windows take. c.mu is held.
func (c *conn) appendDataLocked(st *stream, p []byte) {
	n := int64(len(p))
	c.queue = appendFrameHeader(c.queue, int(n), http2.FrameData, 0, st.id)
	c.queue = append(c.queue, p...)
	c.sendWindow -= n
	st.sendWindow -= n
	c.wake()
}

func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's writer goroutine: it copies the queue to
// the socket.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer close(c.wrote)
	for {
		select {
		case <-c.kick:
		case <-c.ctx.Done():
			return
		}
		// Let the calls that are about to finish queue their answers
		// too: one write for several saves the client and the kernel
		// work.
		runtime.Gosched()
		c.mu.Lock()
		if len(c.acks) > 0 && len(c.queue) > 0 {
			c.sendAcksLocked() // behind the answers (see holdAck)
		}
		buf := c.queue
		c.queue = c.spare[:0]
		if c.queue == nil {
			c.queue = make([]byte, 0, 8<<10)
		}
		c.spare = nil
		goingAway := c.goingAway
		c.space.Broadcast()
		c.mu.Unlock()
		if len(buf) > 0 {
			if _, err := c.nc.Write(buf); err != nil {
				c.close()
				return
			}
		}
		c.mu.Lock()
		if cap(buf) <= 4*maxQueued {
			c.spare = buf[:0]
		}
		done := goingAway && len(c.queue) == 0
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// goAway queues a GOAWAY frame and gives the writer a moment to send it.
// The caller closes the connection afterwards.
func (c *conn) goAway(code http2.ErrCode) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	b := appendFrameHeader(c.queue, 8, http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, c.lastID)
	c.queue = binary.BigEndian.AppendUint32(b, uint32(code))
	c.goingAway = true
	c.mu.Unlock()
	c.wake()
	c.nc.SetWriteDeadline(time.Now().Add(goAwayLinger))
	select {
	case <-c.wrote:
	case <-time.After(goAwayLinger):
	}
}

// close closes the connection and ends its streams. It is safe to call
// more than once, from any goroutine.
func (c *conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	for _, st := range c.streams {
		c.endLocked(st)
	}
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
	c.space.Broadcast()
	nc := c.nc
	c.mu.Unlock()
	c.cancel()
	nc.Close()
}

// stream is one call.
type stream struct {
	c           *conn
	id          uint32
	ctx         context.Context
	cancel      context.CancelFunc
	method      string
	path        string
	authority   string
	contentType string

	short    bool                    // a short-path call: unary or async is set
	unary    Unary                   // the short path's handler
	async    Async                   // or its Async handler
	cont     func() (Message, error) // an Async call's continuation (see Continue)
	req      []byte                  // the unary request as received; owned by the reader until the call starts
	tooLarge bool                    // owned by the reader
	body     *body                   // a fallback stream's request body

	// Guarded by c.mu.
	expire     *time.Timer // ends the call if its deadline passes before the request is complete (or, Async, before its answer)
	sendWindow int64
	received   int64  // request bytes received
	consumed   int64  // of those, how many were handed on or dropped
	credit     uint32 // consumed bytes not yet sent as a stream WINDOW_UPDATE
	taken      int64  // body bytes gRPC-go read that its handler has not received
	reqDone    bool   // the client ended its half
	done       bool   // the response is complete, or the stream was reset
}

var errStreamReset = errors.New("h2grpc: stream closed")

// isGRPC reports whether a content-type is gRPC's.
func isGRPC(ct string) bool {
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	rest := ct[len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// parseTimeout parses gRPC's grpc-timeout header: at most eight digits and
// a unit.
func parseTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var v int64
	for _, ch := range s[:len(s)-1] {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + int64(ch-'0')
	}
	if v > int64(1<<63-1)/int64(unit) {
		return 1<<63 - 1, true
	}
	return time.Duration(v) * unit, true
}

func appendFrameHeader(b []byte, length int, typ http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(typ), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func appendSetting(b []byte, id http2.SettingID, v uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(id))
	return binary.BigEndian.AppendUint32(b, v)
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, inc&0x7fffffff)
}

func appendRST(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, id)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}
