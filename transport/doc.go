// Package transport carries raft messages between replicas over TCP.
//
// Its one responsibility is moving raft.Message values from this node to
// the node named in Message.To, and delivering the ones addressed to this
// node to a Handler. It does not interpret messages beyond routing them.
//
// # What it does
//
//   - One long-lived outbound connection per peer, dialed on Start and
//     redialed after a failure with capped, jittered exponential backoff.
//     Inbound connections are the peers' outbound ones; each direction of a
//     pair has its own connection.
//   - A handshake on every connection (magic, version, stream kind, cluster
//     ID, sender and intended receiver). The acceptor refuses a sender of
//     another cluster, an unknown node ID, or a connection meant for another
//     node; it sends the reason back and both ends log it.
//   - Length-prefixed frames, each holding every message that was queued
//     when the peer's writer goroutine woke up (batching: one write for many
//     messages). A frame longer than Config.MaxFrameBytes is refused by the
//     reader before anything is allocated for it.
//   - A bounded queue per peer (Config.QueueLen). Send never blocks: a
//     message that does not fit is dropped and the peer is reported
//     unreachable. A connection that cannot be made reports the peer
//     unreachable and discards what was queued; one that is lost reports it
//     unreachable, and what is still queued goes out on the next connection.
//   - MsgSnap travels on a connection of its own, the snapshot data in
//     chunks, so heartbeats and appends never wait behind it. The receiver
//     reassembles it (up to Config.MaxSnapshotBytes) and delivers the
//     complete MsgSnap; the sender reports success or failure through
//     Handler.ReportSnapshot.
//   - TLS on both sides when Config.TLS is set (mutual TLS through the
//     usual tls.Config fields).
//
// # What it does not do
//
// It does not retry: a dropped message is gone, and raft, told through
// ReportUnreachable, resends what matters. It does not persist anything,
// authenticate node IDs beyond what TLS certificates establish (the
// handshake's IDs are claims), or discover peers: addresses come from
// Config.Peers and AddPeer.
//
// # Ordering
//
// Messages to one peer are written in Send order on one connection, so a
// peer receives them in that order, with gaps where messages were dropped
// and, after a reconnect, possibly a gap at the switch. There is no
// ordering across peers, and none between the snapshot stream and the
// message stream: a message sent after a MsgSnap may arrive before it.
//
// # Goroutines
//
// Per transport: one accept loop and one reporter (which calls
// ReportUnreachable, so that Send never calls back into its caller). Per
// peer: a writer, which owns the outbound message connection and a short
// helper that notices when the peer closes it, and a snapshot sender. Per
// accepted connection: one reader, which calls HandleMessages. Close stops
// all of them and waits; RemovePeer and AddPeer stop a peer's without
// waiting.
package transport
