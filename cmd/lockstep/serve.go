package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/server"
)

// serveOptions are the flags of lockstep serve, named as etcd's.
type serveOptions struct {
	name, dataDir                            string
	listenClient, advertiseClient            string
	listenPeer, advertisePeer                string
	initialCluster, clusterState, clusterTok string
	maxRequestBytes, maxTxnOps               int
	snapshotCount                            uint64
	logLevel                                 string
	pprofAddr                                string
	compactionMode, compactionRetention      string
	listenMetrics                            string
	leaseReads                               bool
	clientTLS, peerTLS                       tlsFlags
}

func (o *serveOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.name, "name", "default", "this member's name, one of --initial-cluster")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory of the member's log and snapshots (default ${name}.lockstep)")
	fs.StringVar(&o.listenClient, "listen-client-urls", "http://localhost:2379", "comma-separated URLs to serve clients on")
	fs.StringVar(&o.advertiseClient, "advertise-client-urls", "", "comma-separated client URLs to publish to the cluster (default --listen-client-urls)")
	fs.StringVar(&o.listenPeer, "listen-peer-urls", "http://localhost:2380", "URL to accept peer connections on")
	fs.StringVar(&o.advertisePeer, "initial-advertise-peer-urls", "", "this member's peer URL as --initial-cluster lists it (default its entry there)")
	fs.StringVar(&o.initialCluster, "initial-cluster", "default=http://localhost:2380", "every member: name=http://host:port,... (member IDs derive from the names)")
	fs.StringVar(&o.clusterState, "initial-cluster-state", "new", "new (start or resume a member of a new cluster) or existing (resume; the data dir must hold the member's log)")
	fs.StringVar(&o.clusterTok, "initial-cluster-token", "lockstep-cluster", "cluster token; its hash is the cluster ID, and members with different tokens refuse each other")
	fs.IntVar(&o.maxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "largest client request in bytes")
	fs.IntVar(&o.maxTxnOps, "max-txn-ops", kv.DefaultMaxTxnOps, "most operations per txn level (the same on every member)")
	fs.Uint64Var(&o.snapshotCount, "snapshot-count", server.DefaultSnapshotEntries, "applied entries between snapshots of the key-value state (the log is compacted behind each)")
	fs.StringVar(&o.compactionMode, "auto-compaction-mode", server.CompactPeriodic, "periodic (keep --auto-compaction-retention of time) or revision (keep that many revisions)")
	fs.StringVar(&o.compactionRetention, "auto-compaction-retention", "0", "history the leader keeps when it compacts on its own: a duration or hours (periodic), or revisions; 0 turns it off")
	fs.BoolVar(&o.leaseReads, "lease-reads", true, "answer linearizable reads from the leader's clock-timed lease instead of a heartbeat round per batch (assumes the members' clocks run within 10% of each other's rate; false: a round every time, as etcd)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.clientTLS.prefix, o.peerTLS.prefix = "", "peer-"
	for _, t := range []struct {
		f    *tlsFlags
		whom string
	}{{&o.clientTLS, "clients"}, {&o.peerTLS, "peers"}} {
		fs.StringVar(&t.f.certFile, t.f.prefix+"cert-file", "", "certificate served to "+t.whom+" on https URLs")
		fs.StringVar(&t.f.keyFile, t.f.prefix+"key-file", "", "key of --"+t.f.prefix+"cert-file")
		fs.StringVar(&t.f.caFile, t.f.prefix+"trusted-ca-file", "", "CA bundle "+t.whom+"' certificates are checked against")
		fs.BoolVar(&t.f.clientCertAuth, t.f.prefix+"client-cert-auth", false, "require "+t.whom+" to present a certificate signed by --"+t.f.prefix+"trusted-ca-file")
	}
	fs.StringVar(&o.listenMetrics, "listen-metrics-urls", "", "comma-separated http URLs to serve /metrics (Prometheus) and /health on (off when empty)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "host:port to serve Go's net/http/pprof profiles on (off when empty; like etcd's --enable-pprof)")
}

func serveFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o serveOptions
	o.register(fs)
	return func(args []string, stdout io.Writer) error {
		if len(args) != 0 {
			return usageErr("unexpected arguments %q", args)
		}
		logger, err := newLogger(o.logLevel, os.Stderr)
		if err != nil {
			return err
		}
		var metricsLns []net.Listener
		defer func() {
			for _, ln := range metricsLns {
				ln.Close()
			}
		}()
		for _, u := range splitURLs(o.listenMetrics) {
			a, err := server.ParseURL(u)
			if err != nil {
				return usageErr("--listen-metrics-urls: %v", err)
			}
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return fmt.Errorf("--listen-metrics-urls: %w", err)
			}
			metricsLns = append(metricsLns, ln)
		}
		cfg, err := o.config(logger)
		if err != nil {
			return err
		}
		if o.pprofAddr != "" {
			ln, err := net.Listen("tcp", o.pprofAddr)
			if err != nil {
				return fmt.Errorf("--pprof-addr: %w", err)
			}
			defer ln.Close()
			go http.Serve(ln, nil) // net/http/pprof registers on the default mux
		}
		s, err := server.Start(cfg)
		if err != nil {
			return err
		}
		for _, ln := range metricsLns {
			hs := &http.Server{Handler: s.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
			defer hs.Close() // ends its Serve
			go hs.Serve(ln)
		}
		metricsLns = nil // the http.Servers close them
		fmt.Fprintf(stdout, "lockstep serve: member %s (ID %x) serving clients on %s\n", s.Name(), uint64(s.ID()), strings.Join(s.ClientURLs(), ","))
		sigc := make(chan os.Signal, 1)
		signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigc)
		select {
		case sig := <-sigc:
			logger.Info("stopping", "signal", sig.String())
			return s.Stop()
		case <-s.Done():
			return errors.Join(fmt.Errorf("member stopped: %w", s.Err()), s.Stop())
		}
	}
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	l, _, err := newLeveledLogger(level, w)
	return l, err
}

// newLeveledLogger is newLogger with the level it can be changed through.
func newLeveledLogger(level string, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, usageErr("--log-level: %q is not debug, info, warn or error", level)
	}
	lv := new(slog.LevelVar)
	lv.Set(l)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), lv, nil
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// config checks the flags against each other and opens the listeners. An
// error names the flag at fault.
func (o *serveOptions) config(logger *slog.Logger) (server.Config, error) {
	var cfg server.Config
	if o.name == "" {
		return cfg, usageErr("--name must not be empty")
	}
	members, err := server.ParseInitialCluster(o.initialCluster)
	if err != nil {
		return cfg, usageErr("--initial-cluster: %v", err)
	}
	var self *server.Member
	var names []string
	for i := range members {
		names = append(names, members[i].Name)
		if members[i].Name == o.name {
			self = &members[i]
		}
	}
	if self == nil {
		return cfg, usageErr("--name %q is not in --initial-cluster (members: %s)", o.name, strings.Join(names, ", "))
	}
	if o.advertisePeer != "" {
		adv := splitURLs(o.advertisePeer)
		if len(adv) != 1 {
			return cfg, usageErr("--initial-advertise-peer-urls: want one URL, got %d", len(adv))
		}
		if _, err := server.ParseURL(adv[0]); err != nil {
			return cfg, usageErr("--initial-advertise-peer-urls: %v", err)
		}
		if adv[0] != self.PeerURL {
			return cfg, usageErr("--initial-advertise-peer-urls %s does not match %s's entry %s in --initial-cluster", adv[0], o.name, self.PeerURL)
		}
	}
	peerURLs := splitURLs(o.listenPeer)
	if len(peerURLs) != 1 {
		return cfg, usageErr("--listen-peer-urls: want one URL, got %d", len(peerURLs))
	}
	peerAddr, err := server.ParseURL(peerURLs[0])
	if err != nil {
		return cfg, usageErr("--listen-peer-urls: %v", err)
	}
	clientURLs := splitURLs(o.listenClient)
	if len(clientURLs) == 0 {
		return cfg, usageErr("--listen-client-urls: no URL")
	}
	var clientAddrs []string
	for _, u := range clientURLs {
		a, err := server.ParseURL(u)
		if err != nil {
			return cfg, usageErr("--listen-client-urls: %v", err)
		}
		clientAddrs = append(clientAddrs, a)
	}
	advertise := splitURLs(o.advertiseClient)
	if len(advertise) == 0 {
		advertise = clientURLs
	}
	for _, u := range advertise {
		if _, err := server.ParseURL(u); err != nil {
			return cfg, usageErr("--advertise-client-urls: %v", err)
		}
	}
	clientHTTPS, err := o.clientTLS.check(append(slices.Clone(clientURLs), advertise...), "--listen-client-urls and --advertise-client-urls")
	if err != nil {
		return cfg, err
	}
	allPeerURLs := slices.Clone(peerURLs)
	for _, m := range members {
		allPeerURLs = append(allPeerURLs, m.PeerURL)
	}
	peerHTTPS, err := o.peerTLS.check(allPeerURLs, "--listen-peer-urls and --initial-cluster")
	if err != nil {
		return cfg, err
	}
	var clientTLS, forwardTLS, peerTLS *tls.Config
	if clientHTTPS {
		if clientTLS, forwardTLS, err = o.clientTLS.configs(); err != nil {
			return cfg, err
		}
	}
	if peerHTTPS {
		serve, dial, err := o.peerTLS.configs()
		if err != nil {
			return cfg, err
		}
		// One configuration serves both roles between members: it verifies
		// the peers it dials and, when asked, the peers that dial it.
		peerTLS = serve
		peerTLS.RootCAs = dial.RootCAs
	}
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = o.name + ".lockstep"
	}
	switch o.clusterState {
	case "new":
	case "existing":
		if !server.HasData(dataDir) {
			return cfg, usageErr("--initial-cluster-state existing: %s holds no member data (adding members to a running cluster is not supported yet; start every member of a new cluster with --initial-cluster-state new)", dataDir)
		}
	default:
		return cfg, usageErr("--initial-cluster-state: %q is not new or existing", o.clusterState)
	}
	if o.clusterTok == "" {
		return cfg, usageErr("--initial-cluster-token must not be empty")
	}
	if o.maxRequestBytes <= 0 || o.maxRequestBytes > 1<<30 {
		return cfg, usageErr("--max-request-bytes: %d is not in 1..%d", o.maxRequestBytes, 1<<30)
	}
	if o.maxTxnOps <= 0 {
		return cfg, usageErr("--max-txn-ops: %d is not positive", o.maxTxnOps)
	}
	if o.snapshotCount == 0 {
		return cfg, usageErr("--snapshot-count: must be positive")
	}
	compaction, err := server.ParseAutoCompaction(o.compactionMode, o.compactionRetention)
	if err != nil {
		return cfg, usageErr("--auto-compaction-mode/--auto-compaction-retention: %v", err)
	}

	peerLn, err := net.Listen("tcp", peerAddr)
	if err != nil {
		return cfg, fmt.Errorf("--listen-peer-urls: %w", err)
	}
	var clientLns []net.Listener
	for _, a := range clientAddrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			peerLn.Close()
			for _, l := range clientLns {
				l.Close()
			}
			return cfg, fmt.Errorf("--listen-client-urls: %w", err)
		}
		clientLns = append(clientLns, ln)
	}
	return server.Config{
		Name:                o.name,
		ClusterID:           server.ClusterID(o.clusterTok),
		Members:             members,
		DataDir:             dataDir,
		PeerListener:        peerLn,
		ClientListeners:     clientLns,
		AdvertiseClientURLs: advertise,
		MaxRequestBytes:     o.maxRequestBytes,
		MaxTxnOps:           o.maxTxnOps,
		SnapshotEntries:     o.snapshotCount,
		AutoCompaction:      compaction,
		LeaseReads:          o.leaseReads,
		ClientTLS:           clientTLS,
		ForwardTLS:          forwardTLS,
		PeerTLS:             peerTLS,
		Logger:              logger,
	}, nil
}

// waitSignal blocks until SIGINT or SIGTERM, or ctx ends.
func waitSignal(ctx context.Context) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	select {
	case <-sigc:
	case <-ctx.Done():
	}
}
