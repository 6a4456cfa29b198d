package raft

import (
	"fmt"
	"testing"
)

// FuzzStep feeds arbitrary messages (decoded from the fuzz input) to the
// leader and a follower of a running cluster. Node.Step may refuse them
// with an error but must never panic: a confused or hostile peer must not
// be able to crash a replica (Node.Step's contract).
func FuzzStep(f *testing.F) {
	seeds := []Message{
		{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 1 << 40},
		{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 3, Reject: true, RejectHint: 1 << 40, LogTerm: 1},
		{Type: MsgApp, From: 1, To: 2, Term: 1, Index: 1 << 50, LogTerm: 1, Commit: 1 << 50, Entries: []Entry{{Index: 1<<50 + 1, Term: 1}}},
		{Type: MsgHeartbeat, From: 1, To: 2, Term: 1, Commit: 99},
		{Type: MsgSnap, From: 1, To: 2, Term: 1, Snapshot: &Snapshot{Meta: SnapshotMeta{Index: 99, Term: 7, ConfState: ConfState{Voters: []NodeID{1}}}}},
		{Type: MsgHeartbeatResp, From: 3, To: 1, Term: 1, Context: []byte{9, 9, 9, 9, 9, 9, 9, 9}},
		{Type: MsgVote, From: 3, To: 2, Term: 9, Index: 1 << 60, LogTerm: 1 << 60},
		{Type: MsgTimeoutNow, From: 1, To: 2, Term: 1},
		{Type: MsgReadIndexResp, From: 1, To: 2, Term: 1, Index: 1 << 33},
	}
	for _, m := range seeds {
		f.Add(AppendMessage(nil, &m), false)
		f.Add(AppendMessage(nil, &m), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, toFollower bool) {
		m, err := DecodeMessage(data)
		if err != nil {
			return
		}
		c := newCluster(3, func(cfg *Config) { cfg.PreVote, cfg.CheckQuorum = true, true })
		c.campaign(1)
		_ = c.propose(1, "a")
		to := NodeID(1)
		if toFollower {
			to = 2
		}
		m.To = to
		if m.From == to {
			m.From = 3
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Step(%s) panicked: %v", describeMessageSafe(m), p)
				}
			}()
			_ = c.nodes[to].Step(m)
			// And what the node does next: handle its Ready, tick.
			for i := 0; i < 3; i++ {
				for _, id := range c.ids {
					if n := c.nodes[id]; n.HasReady() {
						rd := n.Ready()
						c.persist(id, rd)
						n.Advance(rd)
					}
					c.tickNode(id)
				}
			}
		}()
	})
}

func describeMessageSafe(m Message) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprintf("%+v", m)
		}
	}()
	return describeMessage(m)
}
