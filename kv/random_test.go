package kv

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// cmdGen produces a random but reproducible command stream over a small key
// space, so that keys collide, get deleted and recreated, and leases and
// compactions interleave with writes. About one command in ten is invalid in
// some way, to exercise rejections.
type cmdGen struct {
	r      *rand.Rand
	leases []int64
	nextID int64
	rev    func() (rev, compactRev int64)
}

func newCmdGen(seed uint64, rev func() (int64, int64)) *cmdGen {
	return &cmdGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), nextID: 1, rev: rev}
}

func (g *cmdGen) key() []byte {
	return []byte(fmt.Sprintf("k%02d", g.r.IntN(24)))
}

func (g *cmdGen) rangeEnd(key []byte) []byte {
	switch g.r.IntN(4) {
	case 0:
		return []byte{0}
	case 1:
		return []byte(fmt.Sprintf("k%02d", g.r.IntN(24)))
	}
	return nil
}

func (g *cmdGen) lease() int64 {
	if len(g.leases) == 0 || g.r.IntN(3) == 0 {
		if g.r.IntN(10) == 0 {
			return 999 // not granted
		}
		return 0
	}
	return g.leases[g.r.IntN(len(g.leases))]
}

func (g *cmdGen) put() *PutRequest {
	p := &PutRequest{Key: g.key(), Value: []byte(fmt.Sprint(g.r.IntN(1000))), Lease: g.lease(), PrevKv: g.r.IntN(2) == 0}
	if g.r.IntN(15) == 0 {
		p.IgnoreValue, p.Value = true, nil
	}
	return p
}

func (g *cmdGen) rangeReq() *RangeRequest {
	key := g.key()
	rev, compact := g.rev()
	r := &RangeRequest{Key: key, RangeEnd: g.rangeEnd(key), Limit: int64(g.r.IntN(4)),
		SortOrder: SortOrder(g.r.IntN(3)), SortTarget: SortTarget(g.r.IntN(5)),
		KeysOnly: g.r.IntN(5) == 0, CountOnly: g.r.IntN(8) == 0}
	if g.r.IntN(3) == 0 {
		r.Revision = compact + g.r.Int64N(rev-compact+2) - 1
	}
	if g.r.IntN(4) == 0 {
		r.MinModRevision = g.r.Int64N(rev + 1)
	}
	return r
}

func (g *cmdGen) ops(depth int) []RequestOp {
	n := g.r.IntN(4)
	ops := make([]RequestOp, 0, n)
	for range n {
		switch c := g.r.IntN(10); {
		case c < 3:
			ops = append(ops, RequestOp{Range: g.rangeReq()})
		case c < 7:
			ops = append(ops, RequestOp{Put: g.put()})
		case c < 9:
			k := g.key()
			ops = append(ops, RequestOp{DeleteRange: &DeleteRangeRequest{Key: k, RangeEnd: g.rangeEnd(k), PrevKv: true}})
		default:
			if depth < 3 {
				ops = append(ops, RequestOp{Txn: g.txn(depth + 1)})
			}
		}
	}
	return ops
}

func (g *cmdGen) txn(depth int) *TxnRequest {
	t := &TxnRequest{}
	for range g.r.IntN(3) {
		k := g.key()
		c := Compare{Key: k, Result: CompareResult(g.r.IntN(4)), Target: CompareTarget(g.r.IntN(5))}
		if g.r.IntN(4) == 0 {
			c.RangeEnd = g.rangeEnd(k)
		}
		rev, _ := g.rev()
		c.Version, c.CreateRevision, c.ModRevision = g.r.Int64N(4), g.r.Int64N(rev+1), g.r.Int64N(rev+1)
		c.Value, c.Lease = []byte(fmt.Sprint(g.r.IntN(1000))), g.lease()
		t.Compare = append(t.Compare, c)
	}
	t.Success, t.Failure = g.ops(depth), g.ops(depth)
	return t
}

// next returns the next command's log bytes.
func (g *cmdGen) next() []byte {
	var c Command
	switch n := g.r.IntN(100); {
	case n < 40:
		c.Put = g.put()
	case n < 50:
		k := g.key()
		c.DeleteRange = &DeleteRangeRequest{Key: k, RangeEnd: g.rangeEnd(k), PrevKv: g.r.IntN(2) == 0}
	case n < 78:
		c.Txn = g.txn(1)
	case n < 80 && g.r.IntN(2) == 0:
		rev, compact := g.rev()
		c.Compact = &CompactRequest{Revision: compact + g.r.Int64N(rev-compact+2)}
	case n < 80:
		c.Put = g.put()
	case n < 88:
		id := g.nextID
		if g.r.IntN(10) > 0 {
			g.nextID++
		}
		g.leases = append(g.leases, id)
		c.LeaseGrant = &LeaseGrantRequest{ID: id, TTL: g.r.Int64N(100)}
	case n < 95:
		if len(g.leases) > 0 {
			i := g.r.IntN(len(g.leases))
			c.LeaseRevoke = &LeaseRevokeRequest{ID: g.leases[i]}
			g.leases = append(g.leases[:i], g.leases[i+1:]...)
		} else {
			c.LeaseRevoke = &LeaseRevokeRequest{ID: 12345}
		}
	default:
		b := make([]byte, g.r.IntN(8))
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return b // garbage: rejected as a bad command
	}
	b, err := EncodeCommand(c)
	if err != nil {
		panic(err)
	}
	return b
}

// render is a canonical text of a result, for comparing replicas.
func render(res Result) string {
	errText := ""
	if res.Err != nil {
		errText = res.Err.Error()
	}
	res.Err = nil
	b, err := json.Marshal(res)
	if err != nil {
		panic(err)
	}
	return errText + string(b)
}
