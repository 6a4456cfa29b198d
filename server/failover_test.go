package server

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockstep/lockstep/server/servertest"
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

	w := servertest.StartWrites(ctx, []*clientv3.Client{c.client(fs[0]), c.client(fs[1])}, 4, 10*time.Second)
	defer w.Stop()
	w.WaitAcked(t, 100, 30*time.Second)
	c.stop(lead)
	before := w.Acked()
	newLead := c.waitLeader()
	if newLead == lead {
		t.Fatalf("the stopped member %d still leads", lead)
	}
	w.WaitAcked(t, before+100, 30*time.Second)
	w.Stop()

	cli := c.client(fs...)
	if err := w.Check(ctx, cli); err != nil {
		t.Fatalf("after failover: %v", err)
	}

	c.start(lead)
	old := c.client(lead)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := w.Check(ctx, old, clientv3.WithSerializable())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted member did not catch up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d writes acknowledged, %d before the leader stopped", w.Acked(), before)
}

// TestClusterRestartKeepsData stops every member and starts them again from
// their data dirs: keys, revisions and published members survive, and the
// cluster takes writes again. It runs with the default snapshot count (no
// snapshot, the whole log replayed) and with a snapshot every 20 entries
// (restored, then the log after it, while the log before it is kept).
func TestClusterRestartKeepsData(t *testing.T) {
	for _, every := range []uint64{0, 20} {
		t.Run(fmt.Sprintf("snapshot-entries=%d", every), func(t *testing.T) {
			clusterRestartKeepsData(t, every)
		})
	}
}

func clusterRestartKeepsData(t *testing.T, snapshotEntries uint64) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.SnapshotEntries = snapshotEntries })
	c.waitLeader()
	// Every member publishes itself before the stop, so that the member
	// list checked after the restart is what the log kept.
	c.waitPublished()
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
