package storage

import (
	"sort"

	"github.com/lockstep/lockstep/raft"
)

// logIndex maps every live log index to the place of its record on disk, in
// a few bytes per entry: entry data stays on disk.
//
// Invariant: spans are contiguous and cover exactly offset+1..last; terms
// runs cover the same range, with strictly increasing first indexes.
type logIndex struct {
	offset     raft.Index // the entry before the first live one (compaction point)
	offsetTerm raft.Term
	last       raft.Index
	spans      []span
	terms      []termRun
}

// span is a run of consecutive entries whose records lie in one segment, in
// order (other records may sit between them).
type span struct {
	seg   *segment
	first raft.Index
	offs  []uint32 // offs[i] is the offset of the record of entry first+i
	end   int64    // offset just past the record of the span's last entry
}

func (s *span) lastIndex() raft.Index { return s.first + raft.Index(len(s.offs)) - 1 }

// termRun says that entries from first on (up to the next run) have term.
type termRun struct {
	first raft.Index
	term  raft.Term
}

// term returns the term of i, which must be in offset..last.
func (x *logIndex) term(i raft.Index) raft.Term {
	if i == x.offset {
		return x.offsetTerm
	}
	k := sort.Search(len(x.terms), func(k int) bool { return x.terms[k].first > i })
	return x.terms[k-1].term
}

// spanFor returns the span holding i, which must be in offset+1..last.
func (x *logIndex) spanFor(i raft.Index) *span {
	k := sort.Search(len(x.spans), func(k int) bool { return x.spans[k].first > i })
	return &x.spans[k-1]
}

// truncateAfter drops every entry after i (offset <= i <= last).
func (x *logIndex) truncateAfter(i raft.Index) {
	if i >= x.last {
		return
	}
	x.last = i
	for len(x.spans) > 0 {
		sp := &x.spans[len(x.spans)-1]
		if sp.first > i {
			x.spans[len(x.spans)-1] = span{}
			x.spans = x.spans[:len(x.spans)-1]
			continue
		}
		n := int(i - sp.first + 1)
		if n < len(sp.offs) {
			// The record after the kept ones starts where the kept ones end
			// at the latest; the exact end is only an upper bound for reads.
			sp.end = int64(sp.offs[n])
			sp.offs = sp.offs[:n]
		}
		break
	}
	for len(x.terms) > 0 && x.terms[len(x.terms)-1].first > i {
		x.terms = x.terms[:len(x.terms)-1]
	}
}

// append adds entry last+1 with the given term, recorded in seg at
// [off, end).
func (x *logIndex) append(seg *segment, off, end int64, term raft.Term) {
	i := x.last + 1
	x.last = i
	if n := len(x.spans); n > 0 && x.spans[n-1].seg == seg {
		sp := &x.spans[n-1]
		sp.offs = append(sp.offs, uint32(off))
		sp.end = end
	} else {
		x.spans = append(x.spans, span{seg: seg, first: i, offs: []uint32{uint32(off)}, end: end})
	}
	if n := len(x.terms); n == 0 || x.terms[n-1].term != term {
		x.terms = append(x.terms, termRun{first: i, term: term})
	}
}

// compactTo makes i (offset <= i <= last) the new offset.
func (x *logIndex) compactTo(i raft.Index) {
	if i <= x.offset {
		return
	}
	x.offsetTerm = x.term(i)
	x.offset = i
	k := 0
	for k < len(x.spans) && x.spans[k].lastIndex() <= i {
		k++
	}
	x.spans = append(x.spans[:0:0], x.spans[k:]...)
	if len(x.spans) > 0 && x.spans[0].first <= i {
		sp := &x.spans[0]
		sp.offs = append([]uint32(nil), sp.offs[i+1-sp.first:]...)
		sp.first = i + 1
	}
	k = sort.Search(len(x.terms), func(k int) bool { return x.terms[k].first > i })
	switch {
	case i == x.last:
		x.terms = nil
	case k < len(x.terms) && x.terms[k].first == i+1:
		x.terms = append(x.terms[:0:0], x.terms[k:]...)
	default:
		x.terms = append(x.terms[:0:0], x.terms[k-1:]...)
		x.terms[0].first = i + 1
	}
}

// reset empties the log and makes (i, t) the offset.
func (x *logIndex) reset(i raft.Index, t raft.Term) {
	*x = logIndex{offset: i, offsetTerm: t, last: i}
}

// entryCache holds the most recent entries, so that the leader sends what it
// just appended without reading it back.
//
// Invariant: ents[k].Index == ents[0].Index + k, and bytes is the sum of
// raft.EntrySize over ents.
type entryCache struct {
	ents  []raft.Entry
	bytes uint64
	limit uint64
}

// first returns the first cached index, or 0 if the cache is empty.
func (c *entryCache) first() raft.Index {
	if len(c.ents) == 0 {
		return 0
	}
	return c.ents[0].Index
}

func (c *entryCache) clear() {
	clear(c.ents)
	c.ents = c.ents[:0]
	c.bytes = 0
}

// truncateAfter drops cached entries after i.
func (c *entryCache) truncateAfter(i raft.Index) {
	for len(c.ents) > 0 && c.ents[len(c.ents)-1].Index > i {
		c.bytes -= raft.EntrySize(&c.ents[len(c.ents)-1])
		c.ents[len(c.ents)-1] = raft.Entry{}
		c.ents = c.ents[:len(c.ents)-1]
	}
}

// dropThrough drops cached entries up to and including i.
func (c *entryCache) dropThrough(i raft.Index) {
	k := 0
	for k < len(c.ents) && c.ents[k].Index <= i {
		c.bytes -= raft.EntrySize(&c.ents[k])
		c.ents[k] = raft.Entry{}
		k++
	}
	c.ents = c.ents[k:]
}

// append adds ents, which follow the log's last entry (the caller truncated
// any conflicting suffix first), evicting the oldest entries past the limit.
func (c *entryCache) append(ents []raft.Entry) {
	if c.limit == 0 {
		return
	}
	if len(c.ents) > 0 && c.ents[len(c.ents)-1].Index+1 != ents[0].Index {
		c.clear()
	}
	for i := range ents {
		c.bytes += raft.EntrySize(&ents[i])
	}
	c.ents = append(c.ents, ents...)
	k := 0
	for k < len(c.ents) && c.bytes > c.limit {
		c.bytes -= raft.EntrySize(&c.ents[k])
		c.ents[k] = raft.Entry{}
		k++
	}
	c.ents = c.ents[k:]
}
