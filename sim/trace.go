package sim

import (
	"fmt"
	"io"

	"github.com/lockstep/lockstep/raft"
)

// tracer hashes every event into one number (two runs of a seed must agree
// on it) and, when a writer is set, writes a readable line per event.
type tracer struct {
	w io.Writer
	h uint64
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (t *tracer) init() { t.h = fnvOffset }

func (t *tracer) mix(v uint64) {
	for i := 0; i < 8; i++ {
		t.h ^= v & 0xff
		t.h *= fnvPrime
		v >>= 8
	}
}

func (t *tracer) mark(vals ...uint64) {
	for _, v := range vals {
		t.mix(v)
	}
}

func (t *tracer) markMsg(m *raft.Message) {
	t.mark(uint64(m.Type), uint64(m.From), uint64(m.To), uint64(m.Term), uint64(m.LogTerm),
		uint64(m.Index), uint64(m.Commit), uint64(len(m.Entries)))
	if m.Reject {
		t.mix(1)
	}
}

func (t *tracer) line(w *World, format string, args ...any) {
	if t.w == nil {
		return
	}
	fmt.Fprintf(t.w, "%5d.%d ", w.now/UnitsPerTick, w.now%UnitsPerTick)
	fmt.Fprintf(t.w, format, args...)
	fmt.Fprintln(t.w)
}

func describe(m raft.Message) string {
	s := fmt.Sprintf("%s n%d->n%d term=%d", m.Type, m.From, m.To, m.Term)
	switch m.Type {
	case raft.MsgApp:
		s += fmt.Sprintf(" prev=%d/%d commit=%d ents=%d", m.Index, m.LogTerm, m.Commit, len(m.Entries))
		if k := len(m.Entries); k > 0 {
			s += fmt.Sprintf(" [%d/%d..%d/%d]", m.Entries[0].Index, m.Entries[0].Term, m.Entries[k-1].Index, m.Entries[k-1].Term)
		}
	case raft.MsgAppResp:
		s += fmt.Sprintf(" index=%d reject=%v hint=%d/%d", m.Index, m.Reject, m.RejectHint, m.LogTerm)
	case raft.MsgVote, raft.MsgPreVote:
		s += fmt.Sprintf(" last=%d/%d", m.Index, m.LogTerm)
	case raft.MsgVoteResp, raft.MsgPreVoteResp:
		s += fmt.Sprintf(" reject=%v", m.Reject)
	case raft.MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d", m.Commit)
	case raft.MsgSnap:
		s += fmt.Sprintf(" snap=%d/%d", m.Snapshot.Meta.Index, m.Snapshot.Meta.Term)
	case raft.MsgReadIndexResp:
		s += fmt.Sprintf(" index=%d", m.Index)
	}
	return s
}
