package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func nextWatch(t *testing.T, wc clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case wr, ok := <-wc:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return wr
	case <-time.After(20 * time.Second):
		t.Fatal("no watch response within 20s")
	}
	return clientv3.WatchResponse{}
}

// TestWatch watches through a follower: live events in order, history from
// a past revision, prefix and filters, prev kv, cancel, and the compacted
// error.
func TestWatch(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	f := (lead + 1) % 3
	w, cli := c.client(f), c.client(lead)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	first, _ := cli.Put(ctx, "w/a", "0")
	// Start right after the first put: a watch without a revision starts
	// at the contacted member's current revision, and the follower may not
	// have applied that put yet (as in etcd), which made this test flaky.
	live := w.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(first.Header.Revision+1))
	if _, err := w.Put(ctx, "sync", "1"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i <= 5; i++ {
		if _, err := cli.Put(ctx, "w/a", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("PUT w/a=%d prev %d", i, i-1))
	}
	if _, err := cli.Delete(ctx, "w/a"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "DELETE w/a= prev 5")
	var got []string
	for len(got) < len(want) {
		wr := nextWatch(t, live)
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		for _, e := range wr.Events {
			prev := "-"
			if e.PrevKv != nil {
				prev = string(e.PrevKv.Value)
			}
			got = append(got, fmt.Sprintf("%s %s=%s prev %s", e.Type, e.Kv.Key, e.Kv.Value, prev))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("live events:\n got %v\nwant %v", got, want)
	}

	// History: from the first put's revision, deletes filtered out.
	hist := w.Watch(ctx, "w/a", clientv3.WithRev(first.Header.Revision), clientv3.WithFilterDelete())
	var vals []string
	for len(vals) < 6 {
		for _, e := range nextWatch(t, hist).Events {
			if e.Type != mvccpb.PUT {
				t.Fatalf("a delete passed the no-delete filter: %v", e)
			}
			vals = append(vals, string(e.Kv.Value))
		}
	}
	if fmt.Sprint(vals) != "[0 1 2 3 4 5]" {
		t.Fatalf("history: got %v", vals)
	}

	// Compaction cancels a watch that starts below it. (On the member that
	// answered the compaction: a watch is served from the local state, so
	// a follower that has not applied the compaction yet would stream the
	// old events instead, as etcd does.)
	last, _ := cli.Put(ctx, "w/b", "x")
	if _, err := cli.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	old := cli.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision))
	var wr clientv3.WatchResponse
	for wr = nextWatch(t, old); wr.Err() == nil; wr = nextWatch(t, old) {
	}
	if !errors.Is(wr.Err(), rpctypes.ErrCompacted) || wr.CompactRevision != last.Header.Revision {
		t.Fatalf("watch below the compaction: got %v (compact revision %d), want %v at %d", wr.Err(), wr.CompactRevision, rpctypes.ErrCompacted, last.Header.Revision)
	}

	// Closing the watcher stops its stream; the server forgets it.
	if err := w.Watcher.Close(); err != nil {
		t.Fatal(err)
	}
}
