package server

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lockstep/lockstep/internal/leaktest"
)

// testCluster is n in-process members on 127.0.0.1, each with its log on
// disk in a test temp dir, so that stopping and starting a member is a real
// restart from disk.
type testCluster struct {
	t       *testing.T
	members []Member
	clients []string // client addresses, by member index
	dirs    []string
	servers []*Server // nil while stopped
	// configure, if set, adjusts each member's Config before it starts.
	configure func(*Config)
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith starts n members whose Config configure adjusts.
func newTestClusterWith(t *testing.T, n int, configure func(*Config)) *testCluster {
	t.Helper()
	t.Cleanup(leaktest.Check(t))
	c := &testCluster{t: t, servers: make([]*Server, n), configure: configure}
	peerLns := make([]net.Listener, n)
	clientLns := make([]net.Listener, n)
	for i := 0; i < n; i++ {
		peerLns[i] = listen(t, "127.0.0.1:0")
		clientLns[i] = listen(t, "127.0.0.1:0")
		name := fmt.Sprintf("m%d", i)
		c.members = append(c.members, Member{Name: name, ID: MemberID(name), PeerURL: "http://" + peerLns[i].Addr().String()})
		c.clients = append(c.clients, clientLns[i].Addr().String())
		c.dirs = append(c.dirs, t.TempDir())
	}
	t.Cleanup(c.stopAll)
	for i := 0; i < n; i++ {
		c.startWith(i, peerLns[i], clientLns[i])
	}
	return c
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	// A just-closed port may take a moment to be free again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

func (c *testCluster) config(i int) Config {
	return Config{
		Name:           c.members[i].Name,
		ClusterID:      ClusterID("test"),
		Members:        c.members,
		DataDir:        c.dirs[i],
		RequestTimeout: 5 * time.Second,
	}
}

func (c *testCluster) startWith(i int, peer, client net.Listener) {
	c.t.Helper()
	cfg := c.config(i)
	if c.configure != nil {
		c.configure(&cfg)
	}
	cfg.PeerListener = peer
	cfg.ClientListeners = []net.Listener{client}
	s, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("starting member %d: %v", i, err)
	}
	c.servers[i] = s
}

// start restarts a stopped member on its old addresses and data dir.
func (c *testCluster) start(i int) {
	c.t.Helper()
	c.startWith(i, listen(c.t, c.members[i].PeerAddr()), listen(c.t, c.clients[i]))
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if c.servers[i] == nil {
		return
	}
	if err := c.servers[i].Stop(); err != nil {
		c.t.Errorf("stopping member %d: %v", i, err)
	}
	c.servers[i] = nil
}

func (c *testCluster) stopAll() {
	for i := range c.servers {
		c.stop(i)
	}
}

// waitLeader polls until every running member knows the same leader, and
// returns its index.
func (c *testCluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		lead, agreed := -1, true
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			l := s.Leader()
			idx := c.index(uint64(l))
			if idx < 0 || c.servers[idx] == nil || (lead >= 0 && idx != lead) {
				agreed = false
				break
			}
			lead = idx
		}
		if agreed && lead >= 0 {
			return lead
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader agreed on within 20s")
	return -1
}

// waitPublished polls until every running member has applied its own
// publish entry (its name and client URLs): followers need the leader's
// URL to forward to it, and after it the log grows only by what the test
// proposes.
func (c *testCluster) waitPublished() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i, s := range c.servers {
		for s != nil {
			if _, ok := s.sm.published(uint64(s.ID())); ok {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("member %d did not publish itself within 20s", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (c *testCluster) index(id uint64) int {
	for i, m := range c.members {
		if uint64(m.ID) == id {
			return i
		}
	}
	return -1
}

// client returns an etcd client of the given members (all if none), closed
// when the test ends.
func (c *testCluster) client(idx ...int) *clientv3.Client {
	c.t.Helper()
	if len(idx) == 0 {
		for i := range c.members {
			idx = append(idx, i)
		}
	}
	var eps []string
	for _, i := range idx {
		eps = append(eps, c.clients[i])
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
