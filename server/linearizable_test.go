package server

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockstep/lockstep/server/servertest"
)

// TestLinearizableUnderRestarts drives the real server with etcd's client,
// the way a Jepsen test would: clients pinned to each member put, get
// (linearizable), compare-and-set and delete a few keys while members, most
// often the leader, are stopped and restarted from their disks again and
// again. The history must be linearizable (servertest.LinHistory.Check).
//
// It runs with reads confirmed by heartbeat rounds and with lease reads.
// LOCKSTEP_LINEARIZABLE_SECONDS makes each run longer (default 4).
func TestLinearizableUnderRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a multi-second run with restarts")
	}
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease-reads=%v", lease), func(t *testing.T) {
			linearizableUnderRestarts(t, lease)
		})
	}
}

func linearizableUnderRestarts(t *testing.T, leaseReads bool) {
	run := servertest.LinDuration(t, 4*time.Second)
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.LeaseReads = leaseReads
	})
	c.waitLeader()
	var clients []*clientv3.Client
	for id := 0; id < 6; id++ {
		clients = append(clients, c.client(id%3))
	}
	// Every 0.7 s a member is stopped for 0.3 s and restarted from its
	// disk; a follower comes back behind and must catch up before its
	// reads may answer.
	servertest.RunLin(t, clients, run, servertest.LinNemesis{
		Members: 3, Leader: c.waitLeader, Stop: c.stop, Start: c.start,
		Every: 400 * time.Millisecond, Down: 300 * time.Millisecond, Seed: 7,
	})
}

// TestLinearizableUnderPartitions is TestLinearizableUnderRestarts with
// network partitions instead of restarts: every member reaches every other
// through a proxy of its own for that link, and the nemesis cuts a member
// (the leader two times in three) off from the others for 0.8 s, in both
// directions, while its clients keep talking to it: long enough for the
// others to elect a leader when it led.
func TestLinearizableUnderPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a multi-second run with partitions")
	}
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease-reads=%v", lease), func(t *testing.T) {
			linearizableUnderPartitions(t, lease)
		})
	}
}

func linearizableUnderPartitions(t *testing.T, leaseReads bool) {
	run := servertest.LinDuration(t, 4*time.Second)
	links := map[[2]string]*link{}
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.LeaseReads = leaseReads
		// This member dials each other one through the proxy of that link.
		cfg.Members = slices.Clone(cfg.Members)
		for j, m := range cfg.Members {
			if m.Name == cfg.Name {
				continue
			}
			key := [2]string{cfg.Name, m.Name}
			if links[key] == nil {
				links[key] = newLink(t, m.PeerAddr())
			}
			cfg.Members[j].PeerURL = "http://" + links[key].addr()
		}
	})
	c.waitLeader()
	setCut := func(i int, cut bool) {
		for key, l := range links {
			if i < 0 || key[0] == c.members[i].Name || key[1] == c.members[i].Name {
				l.setCut(cut)
			}
		}
	}
	var clients []*clientv3.Client
	for id := 0; id < 6; id++ {
		clients = append(clients, c.client(id%3))
	}
	servertest.RunLin(t, clients, run, servertest.LinNemesis{
		Members: 3, Leader: c.waitLeader,
		Stop:  func(i int) { setCut(i, true) },
		Start: func(int) { setCut(-1, false) },
		Every: 400 * time.Millisecond, Down: 800 * time.Millisecond, Seed: 13,
	})
}

// link is a TCP proxy for one member-to-member link that the test can cut:
// cut, it closes the connections it carries and refuses new ones.
type link struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex // guards cut, conns
	cut    bool
	conns  map[net.Conn]bool
}

func newLink(t *testing.T, target string) *link {
	l := &link{ln: listen(t, "127.0.0.1:0"), target: target, conns: map[net.Conn]bool{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) accept() {
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
func (l *link) track(in, out net.Conn) bool {
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

func (l *link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	l.mu.Lock()
	delete(l.conns, dst)
	delete(l.conns, src)
	l.mu.Unlock()
}

func (l *link) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
	}
}

func (l *link) close() {
	l.ln.Close()
	l.setCut(true)
	l.wg.Wait()
}
