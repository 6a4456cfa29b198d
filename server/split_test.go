package server

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// A connection that has not yet said which protocol it speaks does not
// hold up closing: Close closes it at once rather than waiting out
// sniffTimeout.
func TestSplitListenerCloseEndsConnectionsBeingSorted(t *testing.T) {
	sl := newSplitListener(listen(t, "127.0.0.1:0"))
	c, err := net.Dial("tcp", sl.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PRI * ")); err != nil { // part of the preface, then silence
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sl.mu.Lock()
		n := len(sl.sorting)
		sl.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection never reached sorting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		sl.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(sniffTimeout / 2):
		t.Fatalf("Close still waiting after %v on a silent connection", sniffTimeout/2)
	}
	// Closed by the server: EOF, or a reset since it left bytes unread;
	// not a timeout.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("reading from the connection after Close: %v, want it closed", err)
	}
}
