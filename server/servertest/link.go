package servertest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Link is a TCP proxy for one member-to-member link that a test can cut:
// cut, it closes the connections it carries and refuses new ones. Its
// goroutines end when the test does (NewLink registers Close).
type Link struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex // guards cut, conns
	cut    bool
	conns  map[net.Conn]bool
}

// NewLink starts a proxy on a free loopback port that forwards to target.
func NewLink(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("link to %s: %v", target, err)
	}
	l := &Link{ln: ln, target: target, conns: map[net.Conn]bool{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.Close)
	return l
}

// Addr is the proxy's host:port.
func (l *Link) Addr() string { return l.ln.Addr().String() }

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", l.target, time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !l.track(in, out) {
			continue
		}
		l.wg.Add(2)
		go l.pipe(in, out)
		go l.pipe(out, in)
	}
}

// track registers a proxied pair, or closes it if the link is cut.
func (l *Link) track(in, out net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		in.Close()
		out.Close()
		return false
	}
	l.conns[in], l.conns[out] = true, true
	return true
}

func (l *Link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	l.mu.Lock()
	delete(l.conns, dst)
	delete(l.conns, src)
	l.mu.Unlock()
}

// SetCut cuts the link (true) or restores it (false).
func (l *Link) SetCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
	}
}

// Close stops the proxy and waits for its goroutines.
func (l *Link) Close() {
	l.ln.Close()
	l.SetCut(true)
	l.wg.Wait()
}
