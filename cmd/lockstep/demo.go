package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lockstep/lockstep/server"
)

// demoPorts are the client and peer ports the demo tries first (etcd's
// conventional local-cluster ports), so the printed commands are stable;
// if any is taken it picks free ports.
var demoPorts = [3][2]int{{2379, 2380}, {22379, 22380}, {32379, 32380}}

func demoFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	dataDir := fs.String("data-dir", "", "directory for the three members' data (default: a temporary directory, removed on exit)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	return func(args []string, w io.Writer) error {
		if len(args) != 0 {
			return usageErr("unexpected arguments %q", args)
		}
		logger, level, err := newLeveledLogger(*logLevel, os.Stderr)
		if err != nil {
			return err
		}
		dir := *dataDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "lockstep-demo-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		peerLns, clientLns, err := demoListeners()
		if err != nil {
			return err
		}
		var members []server.Member
		var eps []string
		for i := range peerLns {
			name := fmt.Sprintf("m%d", i+1)
			members = append(members, server.Member{Name: name, ID: server.MemberID(name), PeerURL: "http://" + peerLns[i].Addr().String()})
			eps = append(eps, clientLns[i].Addr().String())
		}
		var servers []*server.Server
		defer func() {
			for _, s := range servers {
				s.Stop()
			}
		}()
		for i, m := range members {
			s, err := server.Start(server.Config{
				Name:            m.Name,
				ClusterID:       server.ClusterID("lockstep-demo"),
				Members:         members,
				DataDir:         filepath.Join(dir, m.Name),
				PeerListener:    peerLns[i],
				ClientListeners: []net.Listener{clientLns[i]},
				LeaseReads:      true,
				Logger:          logger.With("member", m.Name),
			})
			if err != nil {
				for _, ln := range peerLns[i+1:] {
					ln.Close()
				}
				for _, ln := range clientLns[i+1:] {
					ln.Close()
				}
				return err
			}
			servers = append(servers, s)
		}
		lead := waitDemoLeader(servers, 10*time.Second)
		all := strings.Join(eps, ",")
		fmt.Fprintf(w, "lockstep demo: 3 members on loopback, data in %s\n\n", dir)
		for i, m := range members {
			fmt.Fprintf(w, "  %s  ID %016x  clients http://%s  peers %s\n", m.Name, uint64(m.ID), eps[i], m.PeerURL)
		}
		if lead != "" {
			fmt.Fprintf(w, "\n%s leads. ", lead)
		} else {
			fmt.Fprintf(w, "\nNo leader yet. ")
		}
		fmt.Fprintf(w, `Try, in another terminal:

  go run ./cmd/lockstep put --endpoints=%[1]s greeting hello
  go run ./cmd/lockstep get --endpoints=%[2]s greeting
  go run ./cmd/lockstep txn --endpoints=%[1]s --if-value greeting=hello --then-put greeting=bonjour --else-get greeting
  go run ./cmd/lockstep status --endpoints=%[3]s

or with etcdctl (apt-get install etcd-client):

  ETCDCTL_API=3 etcdctl --endpoints=%[3]s put foo bar
  ETCDCTL_API=3 etcdctl --endpoints=%[3]s get foo
  ETCDCTL_API=3 etcdctl --endpoints=%[3]s endpoint status -w table
  ETCDCTL_API=3 etcdctl --endpoints=%[3]s member list -w table

Press Ctrl-C to stop.
`, eps[0], eps[1], all)
		ctx := context.Background()
		if *duration > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *duration)
			defer cancel()
		}
		waitSignal(ctx)
		fmt.Fprintln(w, "stopping")
		// The members stop one after another, and each that is left
		// warns that it lost the others: expected here, and alarming to
		// someone trying the demo. Only errors are worth showing now.
		level.Set(max(level.Level(), slog.LevelError))
		return nil
	}
}

// demoListeners listens on demoPorts on 127.0.0.1, or on free ports if any
// of them is taken.
func demoListeners() (peers, clients []net.Listener, err error) {
	closeAll := func() {
		for _, ln := range append(peers, clients...) {
			ln.Close()
		}
		peers, clients = nil, nil
	}
	for _, ports := range demoPorts {
		c, err1 := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		p, err2 := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		if err1 != nil || err2 != nil {
			if c != nil {
				c.Close()
			}
			if p != nil {
				p.Close()
			}
			closeAll()
			break
		}
		clients, peers = append(clients, c), append(peers, p)
	}
	if len(peers) == len(demoPorts) {
		return peers, clients, nil
	}
	for range demoPorts {
		c, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
		p, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		peers = append(peers, p)
	}
	return peers, clients, nil
}

func waitDemoLeader(servers []*server.Server, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			if l := s.Leader(); l != 0 {
				for _, o := range servers {
					if o.ID() == l {
						return o.Name()
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}
