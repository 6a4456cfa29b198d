package server

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"time"
)

// http2Preface opens every HTTP/2 connection, gRPC's included.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffTimeout bounds how long a new connection may take to send the bytes
// that tell HTTP/2 from HTTP/1.x.
const sniffTimeout = 10 * time.Second

// splitListener serves gRPC and etcd's HTTP/JSON gateway on one plaintext
// port, as etcd does: a connection that opens with the HTTP/2 preface goes
// to gRPC, any other to the gateway's HTTP/1.x server. It owns one accept
// goroutine and a short-lived goroutine per connection being sorted (ended
// by sniffTimeout at the latest).
type splitListener struct {
	ln      net.Listener
	grpc    *chanListener
	gateway *chanListener
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu      sync.Mutex            // guards sorting, closed
	sorting map[net.Conn]struct{} // connections being sorted, closed by close
	closed  bool
}

func newSplitListener(ln net.Listener) *splitListener {
	sl := &splitListener{ln: ln, done: make(chan struct{}), sorting: map[net.Conn]struct{}{}}
	sl.grpc = &chanListener{sl: sl, ch: make(chan net.Conn)}
	sl.gateway = &chanListener{sl: sl, ch: make(chan net.Conn)}
	sl.wg.Add(1)
	go sl.run()
	return sl
}

func (sl *splitListener) run() {
	defer sl.wg.Done()
	for {
		c, err := sl.ln.Accept()
		if err != nil {
			var t interface{ Temporary() bool }
			if errors.As(err, &t) && t.Temporary() {
				// Out of file descriptors and the like: wait and
				// retry, as net/http does, unless closed meanwhile.
				select {
				case <-time.After(50 * time.Millisecond):
					continue
				case <-sl.done:
				}
			}
			sl.close()
			return
		}
		sl.mu.Lock()
		if sl.closed {
			sl.mu.Unlock()
			c.Close()
			continue
		}
		sl.sorting[c] = struct{}{}
		sl.wg.Add(1)
		sl.mu.Unlock()
		go sl.sort(c)
	}
}

// sort reads as much of the preface as the connection sends, stopping at
// the first byte that differs, and hands the connection on with those
// bytes put back.
func (sl *splitListener) sort(c net.Conn) {
	defer sl.wg.Done()
	defer func() {
		sl.mu.Lock()
		delete(sl.sorting, c)
		sl.mu.Unlock()
	}()
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	buf := make([]byte, len(http2Preface))
	n := 0
	for n < len(buf) && bytes.Equal(buf[:n], []byte(http2Preface[:n])) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			c.Close()
			return
		}
	}
	c.SetReadDeadline(time.Time{})
	to := sl.gateway
	if n == len(buf) && string(buf) == http2Preface {
		to = sl.grpc
	}
	select {
	case to.ch <- &prefixConn{Conn: c, prefix: buf[:n]}:
	case <-sl.done:
		c.Close()
	}
}

// close stops accepting, ends both sides' Accept and closes the
// connections still being sorted (a client that sends nothing would
// otherwise hold Close for sniffTimeout); it waits for nothing.
func (sl *splitListener) close() {
	sl.once.Do(func() {
		close(sl.done)
		sl.ln.Close()
		sl.mu.Lock()
		sl.closed = true
		for c := range sl.sorting {
			c.Close()
		}
		sl.mu.Unlock()
	})
}

// Close closes the listener and waits for its goroutines.
func (sl *splitListener) Close() {
	sl.close()
	sl.wg.Wait()
}

// chanListener is one side of a splitListener.
type chanListener struct {
	sl *splitListener
	ch chan net.Conn
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.sl.done:
		return nil, net.ErrClosed
	}
}

// Close closes the whole splitListener: its two sides share one port.
func (l *chanListener) Close() error {
	l.sl.close()
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.sl.ln.Addr() }

// prefixConn replays the bytes read while sorting before the rest.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
