package h2grpc

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
)

// startFallback hands a stream to the fallback handler as an HTTP/2
// request whose body is the stream's data.
func (c *conn) startFallback(st *stream, f *headerBlock) error {
	u, err := url.ParseRequestURI(st.path)
	if err != nil {
		c.refuse(st.id, http2.ErrCodeProtocol)
		return nil
	}
	h := make(http.Header, len(f.Fields))
	for _, hf := range f.Fields {
		if !strings.HasPrefix(hf.Name, ":") {
			h.Add(hf.Name, hf.Value)
		}
	}
	st.ctx, st.cancel = context.WithCancel(c.ctx)
	st.body = &body{st: st}
	st.body.cond.L = &st.body.mu
	req := (&http.Request{
		Method:        st.method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h,
		Body:          st.body,
		ContentLength: -1,
		Host:          st.authority,
		RemoteAddr:    c.remote,
		RequestURI:    st.path,
		TLS:           c.tls,
	}).WithContext(context.WithValue(st.ctx, streamKey{}, st))
	c.register(st)
	if f.StreamEnded() {
		c.endRequest(st)
	}
	w := &respWriter{st: st, h: make(http.Header)}
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		defer c.handlerDone()
		c.s.cfg.Fallback.ServeHTTP(w, req)
		w.finish()
	}()
	return nil
}

// streamKey is the request context's key for its stream.
type streamKey struct{}

// StreamInterceptor must be the Fallback grpc.Server's stream interceptor
// (grpc.StreamInterceptor, or first in grpc.ChainStreamInterceptor). gRPC-go
// reads a request body as fast as it arrives, so a stream's window is
// credited back only as the handler receives messages: a handler that
// stops receiving stops its client after one window. Without it, a
// streaming client stalls once it has sent a window's worth.
func StreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	st, ok := ss.Context().Value(streamKey{}).(*stream)
	if !ok {
		return handler(srv, ss)
	}
	return handler(srv, &receiving{ServerStream: ss, st: st})
}

// receiving credits a stream's window each time its handler receives.
type receiving struct {
	grpc.ServerStream
	st *stream
}

func (r *receiving) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	c := r.st.c
	c.mu.Lock()
	n := r.st.taken
	r.st.taken = 0
	c.mu.Unlock()
	c.consumed(r.st, int(n))
	return err
}

// body is a fallback stream's request body. Bytes read from it are
// credited back to the stream's window once the handler receives them
// (StreamInterceptor).
type body struct {
	st   *stream
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte
	err  error // io.EOF once the client ended its half
	shut bool  // closed by the handler
}

// push adds a DATA frame's bytes. It runs on the reader goroutine.
func (b *body) push(p []byte) {
	b.mu.Lock()
	if b.shut || b.err != nil {
		b.mu.Unlock()
		b.st.c.consumed(b.st, len(p))
		return
	}
	b.buf = append(b.buf, p...)
	b.cond.Signal()
	b.mu.Unlock()
}

// end ends the body with err, once.
func (b *body) end(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) == 0 && b.err == nil && !b.shut {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		err := b.err
		if b.shut {
			err = io.ErrClosedPipe
		}
		b.mu.Unlock()
		return 0, err
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	if len(b.buf) == 0 {
		b.buf = nil
	}
	b.mu.Unlock()
	// Credited when the handler receives (StreamInterceptor).
	c := b.st.c
	c.mu.Lock()
	b.st.taken += int64(n)
	c.mu.Unlock()
	return n, nil
}

func (b *body) Close() error {
	b.mu.Lock()
	n := len(b.buf)
	b.buf, b.shut = nil, true
	b.cond.Broadcast()
	b.mu.Unlock()
	b.st.c.consumed(b.st, n)
	return nil
}

// consumed records that a fallback stream's handler took (or dropped) n
// bytes of its body, crediting them back to the stream's window.
func (c *conn) consumed(st *stream, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.done {
		return // endLocked released what the stream held
	}
	c.releaseLocked(st, int64(n))
	st.credit += uint32(n)
	if !st.reqDone && st.credit >= c.s.cfg.StreamWindow/4 {
		c.queue = appendWindowUpdate(c.queue, st.id, st.credit)
		st.credit = 0
		c.wake()
	}
}

// respWriter is the http.ResponseWriter of a fallback stream. Like the
// ResponseWriter of net/http's HTTP/2 server, it sends as trailers the
// headers named in "Trailer" and those set with http.TrailerPrefix.
type respWriter struct {
	st          *stream
	h           http.Header
	wroteHeader bool
}

func (w *respWriter) Header() http.Header { return w.h }

func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.st.done {
		return
	}
	c.hbuf.Reset()
	c.writeField(":status", itoa(code))
	w.encodeFields(false)
	c.queueBlockLocked(w.st.id, false)
}

// encodeFields encodes the headers of w.h that are trailers (declared in
// "Trailer" or set with http.TrailerPrefix), or those that are not, and
// reports how many it encoded. c.mu is held.
func (w *respWriter) encodeFields(trailers bool) int {
	declared := w.trailerNames()
	n := 0
	for k, vv := range w.h {
		name, prefixed := strings.CutPrefix(k, http2.TrailerPrefix)
		if k == "Trailer" || k == "Date" || (prefixed || declared[k]) != trailers {
			continue
		}
		for _, v := range vv {
			w.st.c.writeField(strings.ToLower(name), v)
			n++
		}
	}
	return n
}

func (w *respWriter) trailerNames() map[string]bool {
	m := map[string]bool{}
	for _, v := range w.h["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				m[http.CanonicalHeaderKey(k)] = true
			}
		}
	}
	return m
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.sendDataLocked(w.st, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends the headers if nothing was written yet; written bytes are
// already queued for the socket.
func (w *respWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
}

// finish ends the stream once the handler has returned: trailers, or an
// empty DATA frame, with END_STREAM.
func (w *respWriter) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.st.done {
		return
	}
	c.hbuf.Reset()
	if w.encodeFields(true) > 0 {
		c.queueBlockLocked(w.st.id, true)
	} else {
		c.queue = appendFrameHeader(c.queue, 0, http2.FrameData, http2.FlagDataEndStream, w.st.id)
		c.wake()
	}
	if !w.st.reqDone {
		c.queue = appendRST(c.queue, w.st.id, http2.ErrCodeNo)
	}
	c.endLocked(w.st)
}

func itoa(n int) string {
	if n == http.StatusOK {
		return "200"
	}
	return strconv.Itoa(n)
}
