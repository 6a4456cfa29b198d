package h2grpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const failMethod = "/etcdserverpb.KV/Put"

// Answers whose header blocks come from the memo decode right however
// other answers change the encoder's table in between: errors with new
// messages, other content types.
func TestKeptHeaderBlocksStayTrueToTheTable(t *testing.T) {
	fail := func(_ context.Context, b []byte) (Message, error) {
		var req pb.PutRequest
		if err := req.Unmarshal(b); err != nil {
			return nil, err
		}
		return nil, status.Error(codes.NotFound, "no "+string(req.Key))
	}
	f := start(t, Config{Unary: map[string]Unary{echoMethod: echo, failMethod: fail}})
	r := dialRaw(t, f.addr)
	rr, _ := (&pb.RangeRequest{Key: []byte("k")}).Marshal()
	want := map[uint32][2]string{} // stream -> content-type, grpc-status
	// One decoder for the whole connection, as a client has.
	fr := http2.NewFramer(nil, r.c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	for i := range 30 {
		id := uint32(2*i + 1)
		switch i % 5 {
		case 1, 3:
			pr, _ := (&pb.PutRequest{Key: fmt.Appendf(nil, "key-%d", i)}).Marshal()
			b = append(b, r.headers(id, failMethod, false)...)
			b = append(b, data(id, true, append(prefix(uint32(len(pr))), pr...))...)
			want[id] = [2]string{"application/grpc", "5"}
		case 4:
			b = append(b, r.headers(id, echoMethod, false, hpack.HeaderField{Name: "content-type", Value: "application/grpc+proto"})...)
			b = append(b, data(id, true, append(prefix(uint32(len(rr))), rr...))...)
			want[id] = [2]string{"application/grpc+proto", "0"}
		default:
			b = append(b, r.headers(id, echoMethod, false)...)
			b = append(b, data(id, true, append(prefix(uint32(len(rr))), rr...))...)
			want[id] = [2]string{"application/grpc", "0"}
		}
		if err := r.write(b); err != nil {
			t.Fatal(err)
		}
		b = b[:0]
		// One call at a time, so that answers interleave with the
		// table's changes in a known order.
		got := [2]string{}
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("stream %d not answered: %v", id, err)
			}
			h, ok := fm.(*http2.MetaHeadersFrame)
			if !ok || h.StreamID != id {
				continue
			}
			if ct := headerValue(h, "content-type"); ct != "" {
				got[0] = ct
			}
			got[1] = headerValue(h, "grpc-status")
			if h.StreamEnded() {
				break
			}
		}
		if got != want[id] {
			t.Fatalf("stream %d: content-type and grpc-status %q, want %q", id, got, want[id])
		}
	}
	kept := false
	f.srv.mu.Lock()
	for c := range f.srv.conns {
		c.mu.Lock()
		kept = kept || c.memo.headers != nil && c.memo.ok != nil
		c.mu.Unlock()
	}
	f.srv.mu.Unlock()
	if !kept {
		t.Fatal("no header blocks kept after answers that repeat them")
	}
}

// After the client lowers the header table size, the next answer's block
// starts with the dynamic table size update the client must see.
func TestATableSizeChangeReachesTheNextAnswer(t *testing.T) {
	f := start(t, Config{})
	r := dialRaw(t, f.addr)
	rr, _ := (&pb.RangeRequest{Key: []byte("k")}).Marshal()
	msg := append(prefix(uint32(len(rr))), rr...)
	fr := http2.NewFramer(nil, r.c)
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer := func(id uint32) []byte {
		t.Helper()
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no answer on stream %d: %v", id, err)
			}
			if h, ok := fm.(*http2.HeadersFrame); ok && h.StreamID == id {
				return h.HeaderBlockFragment()
			}
		}
	}
	// Two answers first, so that the second one's block is kept.
	for _, id := range []uint32{1, 3} {
		if err := r.write(append(r.headers(id, echoMethod, false), data(id, true, msg)...)); err != nil {
			t.Fatal(err)
		}
		answer(id)
	}
	b := appendFrameHeader(nil, 6, http2.FrameSettings, 0, 0)
	b = appendSetting(b, http2.SettingHeaderTableSize, 0)
	b = append(b, r.headers(5, echoMethod, false)...)
	b = append(b, data(5, true, msg)...)
	if err := r.write(b); err != nil {
		t.Fatal(err)
	}
	if blk := answer(5); len(blk) == 0 || blk[0]&0xe0 != 0x20 {
		t.Fatalf("the answer's block starts %x, not with a table size update", blk)
	}
}
