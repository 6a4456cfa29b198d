package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLeaderKilledDuringWrites stops the leader while writers keep writing
// through the followers. Every write the cluster acknowledged must be there
// afterwards, the writers must make progress under the new leader, and the
// old leader, restarted from its disk, must catch up.
func TestLeaderKilledDuringWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	var fs []int
	for i := range c.members {
		if i != lead {
			fs = append(fs, i)
		}
	}
	ctx := testCtx(t)

	var mu sync.Mutex // guards acked
	acked := map[string]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		cli := c.client(fs[w%2])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d/%05d", w, n), fmt.Sprint(n)
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cli.Put(wctx, k, v)
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitCount := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d writes acknowledged, want %d", count(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCount(100)
	c.stop(lead)
	before := count()
	newLead := c.waitLeader()
	if newLead == lead {
		t.Fatalf("the stopped member %d still leads", lead)
	}
	waitCount(before + 100)
	close(stop)
	wg.Wait()

	cli := c.client(fs...)
	check := func(cli *clientv3.Client, opts ...clientv3.OpOption) error {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range acked {
			get, err := cli.Get(ctx, k, opts...)
			if err != nil {
				return err
			}
			if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != v {
				return fmt.Errorf("acknowledged %s=%s, read %v", k, v, get.Kvs)
			}
		}
		return nil
	}
	if err := check(cli); err != nil {
		t.Fatalf("after failover: %v", err)
	}

	c.start(lead)
	old := c.client(lead)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check(old, clientv3.WithSerializable())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted member did not catch up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d writes acknowledged, %d before the leader stopped", len(acked), before)
}

// TestClusterRestartKeepsData stops every member and starts them again from
// their data dirs: keys, revisions and published members survive, and the
// cluster takes writes again.
func TestClusterRestartKeepsData(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader()
	ctx := testCtx(t)
	cli := c.client()
	var last int64
	for i := 0; i < 50; i++ {
		p, err := cli.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprint("v", i))
		if err != nil {
			t.Fatal(err)
		}
		last = p.Header.Revision
	}
	cli.Delete(ctx, "k00")
	cli.Close()
	c.stopAll()
	for i := range c.members {
		c.start(i)
	}
	c.waitLeader()
	cli = c.client()
	get, err := cli.Get(ctx, "k", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if get.Count != 49 || string(get.Kvs[0].Key) != "k01" || get.Header.Revision != last+1 {
		t.Fatalf("after restart: %d keys from %q at revision %d, want 49 from k01 at %d", get.Count, get.Kvs[0].Key, get.Header.Revision, last+1)
	}
	old, err := cli.Get(ctx, "k00", clientv3.WithRev(last))
	if err != nil || len(old.Kvs) != 1 {
		t.Fatalf("history after restart: got %v, %v", old, err)
	}
	if _, err := cli.Put(ctx, "after", "restart"); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		if m.Name == "" || len(m.ClientURLs) != 1 {
			t.Errorf("member %x: name %q client URLs %v, want its published attributes", m.ID, m.Name, m.ClientURLs)
		}
	}
}

// TestDataDirOfAnotherMember: a data dir remembers which member of which
// cluster it belongs to, and refuses to start as another.
func TestDataDirOfAnotherMember(t *testing.T) {
	c := newTestCluster(t, 1)
	c.waitLeader()
	c.stop(0)
	cfg := c.config(0)
	cfg.ClusterID = ClusterID("another token")
	cfg.PeerListener = listen(t, "127.0.0.1:0")
	cfg.ClientListeners = []net.Listener{listen(t, "127.0.0.1:0")}
	s, err := Start(cfg)
	if err == nil {
		s.Stop()
		t.Fatal("started on the data dir of another cluster's member")
	}
	if !strings.Contains(err.Error(), "belongs to member \"m0\"") {
		t.Fatalf("got %v, want an error naming the data dir's member", err)
	}
}
