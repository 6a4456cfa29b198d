package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestLeases grants, keeps alive, inspects and revokes leases through a
// follower, and checks that the leader expires a lease nobody keeps alive,
// deleting its keys.
func TestLeases(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	cli := c.client((lead + 1) % 3)
	ctx := testCtx(t)

	// Wait until every member has published its client URL, which
	// followers need to forward keep-alives.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ml, err := cli.MemberList(ctx)
		n := 0
		for _, m := range ml.Members {
			if err == nil && len(m.ClientURLs) > 0 {
				n++
			}
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members did not publish their client URLs: %v, %v", ml, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	g, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if g.TTL != MinLeaseTTL || g.ID == 0 {
		t.Fatalf("grant of TTL 1: got ID %d TTL %d, want an ID and the minimum TTL %d", g.ID, g.TTL, MinLeaseTTL)
	}
	if _, err := cli.Put(ctx, "leased", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	ka, err := cli.KeepAliveOnce(ctx, g.ID)
	if err != nil || ka.TTL != MinLeaseTTL {
		t.Fatalf("keep-alive through a follower: got %v, %v", ka, err)
	}
	ttl, err := cli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != MinLeaseTTL || ttl.TTL < 0 || ttl.TTL > MinLeaseTTL || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "leased" {
		t.Fatalf("time to live: got %+v, %v", ttl, err)
	}
	ls, err := cli.Leases(ctx)
	if err != nil || len(ls.Leases) != 1 || ls.Leases[0].ID != g.ID {
		t.Fatalf("leases: got %v, %v", ls, err)
	}
	// Nobody keeps it alive: the leader revokes it and its key goes.
	deadline = time.Now().Add(20 * time.Second)
	for {
		get, err := cli.Get(ctx, "leased")
		if err == nil && get.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired lease's key is still there: %v, %v", get, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ttl, err := cli.TimeToLive(ctx, g.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("time to live of an expired lease: got %v, %v; want TTL -1", ttl, err)
	}

	// A kept-alive lease outlives its TTL; revoking deletes its keys.
	g2, _ := cli.Grant(ctx, 2)
	cli.Put(ctx, "kept", "v", clientv3.WithLease(g2.ID))
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	kach, err := cli.KeepAlive(kctx, g2.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range kach {
		}
	}()
	time.Sleep(3 * time.Second)
	if get, _ := cli.Get(ctx, "kept"); get.Count != 1 {
		t.Fatal("a kept-alive lease expired")
	}
	if _, err := cli.Revoke(ctx, g2.ID); err != nil {
		t.Fatal(err)
	}
	if get, _ := cli.Get(ctx, "kept"); get.Count != 0 {
		t.Fatal("revoking a lease kept its key")
	}
	if _, err := cli.Revoke(ctx, g2.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoking twice: got %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	kcancel()
}

// TestConcurrencyMutex runs clientv3/concurrency's mutex (a lease-backed
// session, txn and watch recipe) from clients of different members: the
// critical sections never overlap.
func TestConcurrencyMutex(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader()
	ctx := testCtx(t)
	var mu sync.Mutex // guards holders, maxHolders
	holders, maxHolders, entered := 0, 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		cli := c.client(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
			if err != nil {
				t.Error(err)
				return
			}
			defer sess.Close()
			m := concurrency.NewMutex(sess, "/lock")
			for n := 0; n < 5; n++ {
				lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := m.Lock(lctx)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				holders++
				entered++
				maxHolders = max(maxHolders, holders)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				holders--
				mu.Unlock()
				if err := m.Unlock(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if maxHolders != 1 || entered != 15 {
		t.Fatalf("got %d holders at once and %d entries, want 1 and 15", maxHolders, entered)
	}
}

// A follower forwards the keep-alives of one client stream over one stream
// to the leader, and opens a new one when the leader changes.
func TestKeepAlivesShareOneForwardingStream(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	ctx := testCtx(t)
	c.waitPublished()
	g, err := c.client(lead).Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	follower := (lead + 1) % 3
	f := c.servers[follower]
	ls := &leaseService{s: f}
	var fwd keepAliveForwarder
	defer fwd.close()
	keepAlive := func() {
		t.Helper()
		ttl, err := ls.keepAlive(ctx, int64(g.ID), &fwd)
		if err != nil || ttl != 10 {
			t.Fatalf("keep-alive through member %d: got TTL %d, %v; want 10", follower, ttl, err)
		}
	}
	keepAlive()
	first := fwd.st
	if first == nil {
		t.Fatal("a follower's keep-alive opened no forwarding stream")
	}
	for range 3 {
		keepAlive()
	}
	if fwd.st != first {
		t.Fatal("later keep-alives opened another forwarding stream")
	}

	// Hand leadership to the third member: the forwarder moves to it.
	third := (lead + 2) % 3
	for c.waitLeader() != third {
		// A transfer is refused while another is under way; retry.
		if err := c.servers[c.waitLeader()].r.TransferLeadership(ctx, c.servers[third].ID()); err != nil && ctx.Err() != nil {
			t.Fatalf("transferring leadership to member %d: %v", third, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	keepAlive()
	if fwd.st == first {
		t.Fatal("after a leader change the keep-alive used the old leader's stream")
	}
}
