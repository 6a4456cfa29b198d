// Package server serves etcd's v3 gRPC API (KV, Watch, Lease, and the parts of
// Maintenance and Cluster that etcdctl's endpoint status and member list
// use) over a replicated kv.Store, so that etcd clients — etcdctl,
// go.etcd.io/etcd/client/v3 — work unchanged against a lockstep cluster.
//
// # Responsibility
//
// server is the only package that knows etcd's protobuf types. For each
// request it checks etcd's limits (request bytes, txn ops, key bytes) and
// rules (empty key, sort options, ...) with etcd's errors, translates the
// request to kv's types, and then:
//   - a write (Put, DeleteRange, Txn, Compact) is encoded with
//     kv.AppendCommand, proposed through replica.Replica (a follower
//     forwards it to the leader) and answered with the applied kv.Result;
//   - a Range is served from the local kv.Store after replica.Read, which
//     is linearizable (ReadIndex: a heartbeat round per batch of reads, or
//     with Config.LeaseReads the leader's clock-timed lease) unless the
//     request asks for serializable.
//
// Any member accepts any request. Errors map to the gRPC status values of
// go.etcd.io/etcd/api/v3/v3rpc/rpctypes, so clients recognise them. No
// request can panic the server: every field is checked before use.
//
// # Serving connections
//
// internal/h2grpc owns the client connections: it speaks HTTP/2 itself and
// answers the KV methods (Range, Put, DeleteRange, Txn, Compact) on a short
// path that decodes the request, calls kvService and writes the answer
// with no gRPC-go machinery between; those handlers read no metadata. The
// methods that write are answered from the proposal's outcome, with no
// goroutine waiting for it (see async.go). Every
// other call (Watch and LeaseKeepAlive streams, the other Lease methods,
// Maintenance, Cluster, compressed requests) goes to the grpc.Server the
// services are registered on, through its ServeHTTP, on the same
// connection. See fastpath.go.
//
// # The replicated state
//
// The state machine (machine) is kv.Store plus the members' published
// attributes (name and client URLs, which MemberList reports and which only
// each member knows of itself). Log entries carry a tag byte to tell the
// two apart; snapshots hold both. Membership itself is fixed by the initial
// cluster.
//
// # What server does not do (yet)
//
// Authentication and membership changes; the HTTP/JSON gateway on TLS
// client URLs (it is served on plaintext ones).
//
// # Txns, TLS, compaction and metrics
//
// A txn that cannot write (no put or delete on either branch) is served as
// a read, through ReadIndex, as etcd serves it; others go through the log.
// Config.ClientTLS and Config.PeerTLS put client and member connections
// under TLS (client certificates and mutual TLS as the tls.Configs say).
// Config.AutoCompaction has the leader compact history on its own, as
// etcd's --auto-compaction-* do. MetricsHandler serves Prometheus metrics,
// with etcd's names where they mean the same, and /health. etcd's
// HTTP/JSON API (POST /v3/kv/put, /v3/kv/range, ...) shares each plaintext
// client port with gRPC, as in etcd: a connection opening with the HTTP/2
// preface goes to gRPC, any other to the gateway.
//
// # Watch
//
// A watcher keeps only the next revision it owes its client and pulls
// events from kv's retained history (kv.Store.Events); kv's Notify hook
// just wakes the watchers whose key or range a write touched. So nothing
// queues per watcher, a write wakes only the watchers it concerns, a slow client
// slows only its own stream (bounded send queue), and a watcher that falls
// behind a compaction is canceled with etcd's compacted error. Watches are
// served from the member's local state, as in etcd.
//
// # Leases
//
// kv has no clock. The leader keeps each lease's deadline in memory and
// proposes a LeaseRevoke when it passes; keep-alives move the deadline, so
// a follower forwards them (and TimeToLive) to the leader's published
// client URL. A new leader restarts every deadline at a full TTL, as etcd
// does. TTLs are at least MinLeaseTTL, far above the time a deposed leader
// needs to step down (CheckQuorum), so it cannot expire a lease its
// successor keeps alive.
//
// # Retries and timeouts
//
// A proposal that surely did not apply (no leader yet, dropped in an
// election) is retried until Config.RequestTimeout, then fails with
// ErrGRPCNoLeader, or ErrGRPCLeaderChanged if it was still being dropped.
// One whose outcome is unknown is never retried: it fails with
// ErrGRPCTimeoutDueToLeaderFail (replaced by a snapshot during a leader
// change) or ErrGRPCTimeout (no answer in time). The mapping is in
// errors.go. etcd clients never retry a failed write themselves.
package server
