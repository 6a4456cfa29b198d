package server

import (
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// Defaults, etcd's where etcd has the same knob.
const (
	// DefaultMaxRequestBytes is etcd's --max-request-bytes default.
	DefaultMaxRequestBytes = 3 << 19 // 1.5 MiB
	// DefaultMaxKeyBytes bounds one key. etcd has no separate key limit
	// (only the request limit); lockstep keeps keys small enough that a
	// range over many of them stays cheap to sort and send.
	DefaultMaxKeyBytes = 64 << 10
	// DefaultRequestTimeout bounds how long a request waits for a leader,
	// a commit or a read index before failing with ErrGRPCTimeout or
	// ErrGRPCNoLeader.
	DefaultRequestTimeout = 5 * time.Second
	// maxMaxRequestBytes bounds MaxRequestBytes: one request must fit
	// gRPC's 32-bit flow-control window.
	maxMaxRequestBytes = 1 << 30
	// grpcOverheadBytes is the slack gRPC gets over MaxRequestBytes, so an
	// oversized request reaches the server and gets etcd's "request is too
	// large" rather than a transport error (etcd allows the same 512 KiB).
	grpcOverheadBytes = 512 << 10
)

// Member is one voter of the initial cluster.
type Member struct {
	Name string
	// ID is the member's raft ID: MemberID(Name) when built by
	// ParseInitialCluster.
	ID raft.NodeID
	// PeerURL is where the other members reach this one
	// (http://host:port).
	PeerURL string
}

// PeerAddr returns the host:port of the member's peer URL.
func (m Member) PeerAddr() string {
	u, err := url.Parse(m.PeerURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// Config configures a Server. See Validate for the defaults.
type Config struct {
	// Name is this member's name, one of Members. Required.
	Name string
	// ClusterID identifies the cluster (ClusterID(token)). Required.
	ClusterID uint64
	// Members is the initial cluster, this member included. Required.
	Members []Member

	// DataDir holds the durable log. Required unless Store is set.
	DataDir string
	// Store, if set, replaces the log in DataDir (tests pass
	// replica.NewMemoryLogStore). The server closes it in Stop.
	Store replica.LogStore

	// PeerListener, if set, is where peers connect; otherwise the server
	// listens on this member's peer address.
	PeerListener net.Listener
	// ClientListeners serve the etcd gRPC API. At least one is required;
	// the server closes them in Stop.
	ClientListeners []net.Listener
	// AdvertiseClientURLs are published to the other members and reported
	// by MemberList. Default: http:// (https:// with ClientTLS) and the
	// listeners' addresses.
	AdvertiseClientURLs []string

	// MaxRequestBytes bounds one request (etcd's --max-request-bytes).
	// Default DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxKeyBytes bounds one key or range end. Default DefaultMaxKeyBytes.
	MaxKeyBytes int
	// MaxTxnOps bounds the compares and ops of each txn level (etcd's
	// --max-txn-ops). Every member must use the same value. Default 128.
	MaxTxnOps int
	// RequestTimeout bounds a request's wait for the cluster. Default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration

	// TickInterval and ElectionTicks tune raft (see replica.Config); zero
	// means the replica's defaults.
	TickInterval  time.Duration
	ElectionTicks int
	// SnapshotEntries is how many applied entries trigger a snapshot of the
	// key-value state and compaction of the log (etcd's --snapshot-count).
	// Default DefaultSnapshotEntries. A snapshot serializes the whole store,
	// so taking one often costs every member CPU in proportion to its size.
	SnapshotEntries uint64

	// ClientTLS, if set, serves the client listeners with TLS (set
	// ClientAuth and ClientCAs in it to require client certificates).
	ClientTLS *tls.Config
	// ForwardTLS is what a member presents and trusts when it calls the
	// leader's client URL (to forward lease keep-alives). Default, with
	// ClientTLS: ClientTLS's certificates, trusting its ClientCAs.
	ForwardTLS *tls.Config
	// PeerTLS, if set, protects the connections between members, in both
	// directions (see transport.Config.TLS).
	PeerTLS *tls.Config

	// AutoCompaction, if its Mode is set, has the leader compact the
	// key-value history on its own. Off by default, as in etcd.
	AutoCompaction AutoCompaction

	// LeaseReads serves linearizable reads from the leader's clock-timed
	// lease rather than a heartbeat round per batch (replica.Config.
	// LeaseReads: it assumes the members' clocks run within 10% of each
	// other's rate). Off in a zero Config; lockstep serve turns it on.
	LeaseReads bool

	// Logger receives the server's events. Nil discards them.
	Logger *slog.Logger
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("server: config: Name is required")
	}
	if c.ClusterID == 0 {
		return errors.New("server: config: ClusterID must not be zero")
	}
	if err := CheckMembers(c.Members); err != nil {
		return err
	}
	if _, ok := c.self(); !ok {
		return fmt.Errorf("server: config: name %q is not one of the members", c.Name)
	}
	if c.DataDir == "" && c.Store == nil {
		return errors.New("server: config: DataDir or Store is required")
	}
	if len(c.ClientListeners) == 0 {
		return errors.New("server: config: at least one client listener is required")
	}
	if len(c.AdvertiseClientURLs) == 0 {
		scheme := "http://"
		if c.ClientTLS != nil {
			scheme = "https://"
		}
		for _, ln := range c.ClientListeners {
			c.AdvertiseClientURLs = append(c.AdvertiseClientURLs, scheme+ln.Addr().String())
		}
	}
	if len(c.AdvertiseClientURLs) > maxPublishedURLs {
		return fmt.Errorf("server: config: %d advertised client URLs, limit %d", len(c.AdvertiseClientURLs), maxPublishedURLs)
	}
	for _, u := range c.AdvertiseClientURLs {
		if len(u) > maxPublishedBytes/maxPublishedURLs {
			return fmt.Errorf("server: config: advertised client URL %.40q... is too long", u)
		}
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxRequestBytes > maxMaxRequestBytes {
		return fmt.Errorf("server: config: MaxRequestBytes is %d, limit %d", c.MaxRequestBytes, maxMaxRequestBytes)
	}
	if c.MaxKeyBytes <= 0 {
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if c.MaxTxnOps < 0 {
		return fmt.Errorf("server: config: MaxTxnOps is %d, want >= 0", c.MaxTxnOps)
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = kv.DefaultMaxTxnOps
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if err := c.AutoCompaction.validate(); err != nil {
		return err
	}
	if c.ClientTLS != nil && c.ForwardTLS == nil {
		c.ForwardTLS = &tls.Config{Certificates: c.ClientTLS.Certificates, RootCAs: c.ClientTLS.ClientCAs, MinVersion: tls.VersionTLS12}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// DefaultSnapshotEntries is etcd's default --snapshot-count.
const DefaultSnapshotEntries = 100000

func (c *Config) self() (Member, bool) {
	for _, m := range c.Members {
		if m.Name == c.Name {
			return m, true
		}
	}
	return Member{}, false
}

// MemberID derives a member's raft ID from its name: the first 8 bytes,
// big-endian, of SHA-256("lockstep member " + name), with zero (raft's "no
// node") mapped to 1. Every member computes the same IDs from the same
// --initial-cluster, so no ID needs configuring, and renaming a member makes
// it a different member.
func MemberID(name string) raft.NodeID {
	sum := sha256.Sum256([]byte("lockstep member " + name))
	id := binary.BigEndian.Uint64(sum[:8])
	if id == 0 {
		id = 1
	}
	return raft.NodeID(id)
}

// ClusterID derives the cluster ID from the initial cluster token the same
// way: SHA-256("lockstep cluster " + token), first 8 bytes, never zero.
// Members started with different tokens refuse each other's connections.
func ClusterID(token string) uint64 {
	sum := sha256.Sum256([]byte("lockstep cluster " + token))
	id := binary.BigEndian.Uint64(sum[:8])
	if id == 0 {
		id = 1
	}
	return id
}

// ParseInitialCluster parses etcd's --initial-cluster syntax,
// "name=http://host:port,name2=http://host2:port2", into members with
// MemberID-derived IDs, and checks it with CheckMembers.
func ParseInitialCluster(s string) ([]Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty cluster definition")
	}
	var ms []Member
	for _, part := range strings.Split(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("entry %q is not name=url", part)
		}
		ms = append(ms, Member{Name: name, ID: MemberID(name), PeerURL: u})
	}
	if err := CheckMembers(ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// ParseURL checks that u (a peer or client URL) is http://host:port or
// https://host:port and returns host:port.
func ParseURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("unparsable URL %q: %v", u, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return "", fmt.Errorf("URL %q: scheme %q, want http or https", u, p.Scheme)
	}
	if p.Path != "" && p.Path != "/" || p.RawQuery != "" || p.User != nil {
		return "", fmt.Errorf("URL %q: want only %s://host:port", u, p.Scheme)
	}
	if _, port, err := net.SplitHostPort(p.Host); err != nil || port == "" {
		return "", fmt.Errorf("URL %q has no port", u)
	}
	return p.Host, nil
}

// IsHTTPS reports whether URL u has the https scheme.
func IsHTTPS(u string) bool { return strings.HasPrefix(strings.ToLower(u), "https://") }

// CheckMembers reports an inconsistent cluster definition: no members, too
// many, a duplicate name, ID or peer URL, or a peer URL that is not
// http(s)://host:port.
func CheckMembers(ms []Member) error {
	if len(ms) == 0 {
		return errors.New("no members")
	}
	if len(ms) > maxMembers {
		return fmt.Errorf("%d members, limit %d", len(ms), maxMembers)
	}
	names := map[string]bool{}
	ids := map[raft.NodeID]string{}
	addrs := map[string]string{}
	for _, m := range ms {
		if m.Name == "" {
			return errors.New("a member has an empty name")
		}
		if names[m.Name] {
			return fmt.Errorf("duplicate member name %q", m.Name)
		}
		names[m.Name] = true
		if m.ID == raft.None {
			return fmt.Errorf("member %q has ID 0", m.Name)
		}
		if other, dup := ids[m.ID]; dup {
			return fmt.Errorf("members %q and %q have the same ID %x", other, m.Name, uint64(m.ID))
		}
		ids[m.ID] = m.Name
		addr, err := ParseURL(m.PeerURL)
		if err != nil {
			return fmt.Errorf("member %q: %v", m.Name, err)
		}
		if other, dup := addrs[addr]; dup {
			return fmt.Errorf("members %q and %q have the same peer address %s", other, m.Name, addr)
		}
		addrs[addr] = m.Name
	}
	return nil
}

// sortedMembers returns ms ordered by ID, as etcd lists members.
func sortedMembers(ms []Member) []Member {
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
