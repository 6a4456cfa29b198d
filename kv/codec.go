package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command encoding, format version 1:
//
//	command     = version:byte kind:byte body
//	bytes       = length:uvarint data
//	int         = zigzag varint
//	put         = flags:byte(prevKv=1 ignoreValue=2 ignoreLease=4) key:bytes value:bytes lease:int
//	deleteRange = flags:byte(prevKv=1) key:bytes rangeEnd:bytes
//	txn         = n:uvarint compare*n n:uvarint op*n n:uvarint op*n   (compare, success, failure)
//	compare     = result:byte target:byte key:bytes rangeEnd:bytes operand
//	operand     = value:bytes if target is VALUE, else int
//	op          = opKind:byte (range | put | deleteRange | txn)
//	range       = flags:byte(keysOnly=1 countOnly=2) sortOrder:byte sortTarget:byte
//	              key:bytes rangeEnd:bytes limit:int revision:int
//	              minMod:int maxMod:int minCreate:int maxCreate:int
//	compact     = revision:int
//	leaseGrant  = id:int ttl:int
//	leaseRevoke = id:int
//
// The version byte lets a later kv read old log entries; a decoder rejects a
// version it does not know rather than guess. Unknown flag bits, enum values
// and trailing bytes are rejected too, so every accepted input has exactly one
// meaning.

const codecVersion = 1

// MaxTxnDepth is the deepest nesting of txns a command may have. etcd bounds
// nesting only through request size; kv bounds it so that decoding and
// applying hostile input cannot exhaust the stack.
const MaxTxnDepth = 32

const (
	kindPut         = 1
	kindDeleteRange = 2
	kindTxn         = 3
	kindCompact     = 4
	kindLeaseGrant  = 5
	kindLeaseRevoke = 6
)

const (
	opRange       = 1
	opPut         = 2
	opDeleteRange = 3
	opTxn         = 4
)

const (
	flagPrevKv      = 1
	flagIgnoreValue = 2
	flagIgnoreLease = 4
	flagKeysOnly    = 1
	flagCountOnly   = 2
)

// Smallest encodings, used to bound element counts by the bytes left before
// allocating.
const (
	minCompareSize = 5 // result, target, two empty bytes, one-byte operand
	minOpSize      = 4 // op kind + the smallest body (compact txn: 3 counts)
)

var errEncode = errors.New("kv: cannot encode command")

// EncodeCommand returns the log encoding of c. It fails if c does not set
// exactly one field, a txn op does not set exactly one field, an enum is out
// of range, or txns nest deeper than MaxTxnDepth.
func EncodeCommand(c Command) ([]byte, error) {
	return AppendCommand(nil, c)
}

// AppendCommand appends the encoding of c to dst (see EncodeCommand).
func AppendCommand(dst []byte, c Command) ([]byte, error) {
	n := 0
	for _, set := range [...]bool{c.Put != nil, c.DeleteRange != nil, c.Txn != nil,
		c.Compact != nil, c.LeaseGrant != nil, c.LeaseRevoke != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return dst, fmt.Errorf("%w: %d kinds set, want 1", errEncode, n)
	}
	dst = append(dst, codecVersion)
	var err error
	switch {
	case c.Put != nil:
		dst = appendPut(append(dst, kindPut), c.Put)
	case c.DeleteRange != nil:
		dst = appendDeleteRange(append(dst, kindDeleteRange), c.DeleteRange)
	case c.Txn != nil:
		dst, err = appendTxn(append(dst, kindTxn), c.Txn, 1)
	case c.Compact != nil:
		dst = binary.AppendVarint(append(dst, kindCompact), c.Compact.Revision)
	case c.LeaseGrant != nil:
		dst = binary.AppendVarint(append(dst, kindLeaseGrant), c.LeaseGrant.ID)
		dst = binary.AppendVarint(dst, c.LeaseGrant.TTL)
	case c.LeaseRevoke != nil:
		dst = binary.AppendVarint(append(dst, kindLeaseRevoke), c.LeaseRevoke.ID)
	}
	return dst, err
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendPut(dst []byte, p *PutRequest) []byte {
	var flags byte
	if p.PrevKv {
		flags |= flagPrevKv
	}
	if p.IgnoreValue {
		flags |= flagIgnoreValue
	}
	if p.IgnoreLease {
		flags |= flagIgnoreLease
	}
	dst = append(dst, flags)
	dst = appendBytes(dst, p.Key)
	dst = appendBytes(dst, p.Value)
	return binary.AppendVarint(dst, p.Lease)
}

func appendDeleteRange(dst []byte, d *DeleteRangeRequest) []byte {
	var flags byte
	if d.PrevKv {
		flags |= flagPrevKv
	}
	dst = append(dst, flags)
	dst = appendBytes(dst, d.Key)
	return appendBytes(dst, d.RangeEnd)
}

func appendRange(dst []byte, r *RangeRequest) ([]byte, error) {
	if r.SortOrder < SortNone || r.SortOrder > SortDescend {
		return dst, fmt.Errorf("%w: sort order %d out of range", errEncode, r.SortOrder)
	}
	if r.SortTarget < SortByKey || r.SortTarget > SortByValue {
		return dst, fmt.Errorf("%w: sort target %d out of range", errEncode, r.SortTarget)
	}
	var flags byte
	if r.KeysOnly {
		flags |= flagKeysOnly
	}
	if r.CountOnly {
		flags |= flagCountOnly
	}
	dst = append(dst, flags, byte(r.SortOrder), byte(r.SortTarget))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.RangeEnd)
	for _, v := range [...]int64{r.Limit, r.Revision, r.MinModRevision, r.MaxModRevision,
		r.MinCreateRevision, r.MaxCreateRevision} {
		dst = binary.AppendVarint(dst, v)
	}
	return dst, nil
}

func appendTxn(dst []byte, t *TxnRequest, depth int) ([]byte, error) {
	if depth > MaxTxnDepth {
		return dst, fmt.Errorf("%w: txn nested deeper than %d", errEncode, MaxTxnDepth)
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.Compare)))
	for i := range t.Compare {
		c := &t.Compare[i]
		if c.Result < CompareEqual || c.Result > CompareNotEqual {
			return dst, fmt.Errorf("%w: compare result %d out of range", errEncode, c.Result)
		}
		if c.Target < CompareVersion || c.Target > CompareLease {
			return dst, fmt.Errorf("%w: compare target %d out of range", errEncode, c.Target)
		}
		dst = append(dst, byte(c.Result), byte(c.Target))
		dst = appendBytes(dst, c.Key)
		dst = appendBytes(dst, c.RangeEnd)
		switch c.Target {
		case CompareValue:
			dst = appendBytes(dst, c.Value)
		case CompareVersion:
			dst = binary.AppendVarint(dst, c.Version)
		case CompareCreate:
			dst = binary.AppendVarint(dst, c.CreateRevision)
		case CompareMod:
			dst = binary.AppendVarint(dst, c.ModRevision)
		case CompareLease:
			dst = binary.AppendVarint(dst, c.Lease)
		}
	}
	var err error
	for _, ops := range [2][]RequestOp{t.Success, t.Failure} {
		dst = binary.AppendUvarint(dst, uint64(len(ops)))
		for i := range ops {
			if dst, err = appendOp(dst, &ops[i], depth); err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

func appendOp(dst []byte, op *RequestOp, depth int) ([]byte, error) {
	n := 0
	for _, set := range [...]bool{op.Range != nil, op.Put != nil, op.DeleteRange != nil, op.Txn != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return dst, fmt.Errorf("%w: txn op sets %d kinds, want 1", errEncode, n)
	}
	switch {
	case op.Range != nil:
		return appendRange(append(dst, opRange), op.Range)
	case op.Put != nil:
		return appendPut(append(dst, opPut), op.Put), nil
	case op.DeleteRange != nil:
		return appendDeleteRange(append(dst, opDeleteRange), op.DeleteRange), nil
	default:
		return appendTxn(append(dst, opTxn), op.Txn, depth+1)
	}
}

// DecodeCommand parses a command produced by EncodeCommand. The returned
// command's byte slices alias b. Errors wrap ErrBadCommand and name the
// offset; DecodeCommand never panics and never allocates more than a small
// multiple of len(b).
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	err := decodeCommandInto(b, &c, nil)
	return c, err
}

// cmdScratch holds the request structs Apply decodes into, so that decoding
// the common commands allocates nothing.
type cmdScratch struct {
	put PutRequest
	del DeleteRangeRequest
	cpt CompactRequest
	lg  LeaseGrantRequest
	lr  LeaseRevokeRequest
}

func decodeCommandInto(b []byte, c *Command, sc *cmdScratch) error {
	if sc == nil {
		sc = new(cmdScratch)
	}
	d := decoder{b: b}
	if v := d.byte("version"); d.err == nil && v != codecVersion {
		return fmt.Errorf("%w: unknown format version %d", ErrBadCommand, v)
	}
	kind := d.byte("kind")
	if d.err != nil {
		return d.err
	}
	switch kind {
	case kindPut:
		sc.put = PutRequest{}
		d.put(&sc.put)
		c.Put = &sc.put
	case kindDeleteRange:
		sc.del = DeleteRangeRequest{}
		d.deleteRange(&sc.del)
		c.DeleteRange = &sc.del
	case kindTxn:
		c.Txn = new(TxnRequest)
		d.txn(c.Txn, 1)
	case kindCompact:
		sc.cpt = CompactRequest{Revision: d.varint("compact revision")}
		c.Compact = &sc.cpt
	case kindLeaseGrant:
		sc.lg = LeaseGrantRequest{ID: d.varint("lease id"), TTL: d.varint("lease ttl")}
		c.LeaseGrant = &sc.lg
	case kindLeaseRevoke:
		sc.lr = LeaseRevokeRequest{ID: d.varint("lease id")}
		c.LeaseRevoke = &sc.lr
	default:
		return fmt.Errorf("%w: unknown command kind %d", ErrBadCommand, kind)
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.off))
	}
	if d.err != nil {
		*c = Command{}
	}
	return d.err
}

// decoder reads the encoding; after the first error every read returns a
// zero value, so callers check d.err once at the end.
type decoder struct {
	b   []byte
	off int
	err error
	// base is the error every failure wraps; nil means ErrBadCommand.
	base error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		base := d.base
		if base == nil {
			base = ErrBadCommand
		}
		d.err = fmt.Errorf("%w: %s at offset %d", base, what, d.off)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated " + what)
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint in " + what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint in " + what)
		return 0
	}
	d.off += n
	return v
}

// bytes returns a length-prefixed field aliasing the input; nil if empty.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(fmt.Sprintf("%s length %d exceeds remaining %d bytes", what, n, len(d.b)-d.off))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

// count reads an element count and checks that many elements of at least
// minSize bytes fit in the remaining input, so that a hostile count cannot
// make the caller allocate.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint(what + " count")
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/minSize) {
		d.fail(fmt.Sprintf("%s count %d exceeds remaining %d bytes", what, n, len(d.b)-d.off))
		return 0
	}
	return int(n)
}

func (d *decoder) flags(what string, allowed byte) (byte, bool) {
	f := d.byte(what + " flags")
	if f&^allowed != 0 {
		d.fail(fmt.Sprintf("unknown %s flags %#x", what, f&^allowed))
		return 0, false
	}
	return f, d.err == nil
}

func (d *decoder) put(p *PutRequest) {
	f, ok := d.flags("put", flagPrevKv|flagIgnoreValue|flagIgnoreLease)
	if !ok {
		return
	}
	p.PrevKv = f&flagPrevKv != 0
	p.IgnoreValue = f&flagIgnoreValue != 0
	p.IgnoreLease = f&flagIgnoreLease != 0
	p.Key = d.bytes("put key")
	p.Value = d.bytes("put value")
	p.Lease = d.varint("put lease")
}

func (d *decoder) deleteRange(r *DeleteRangeRequest) {
	f, ok := d.flags("delete", flagPrevKv)
	if !ok {
		return
	}
	r.PrevKv = f&flagPrevKv != 0
	r.Key = d.bytes("delete key")
	r.RangeEnd = d.bytes("delete range end")
}

func (d *decoder) rangeReq(r *RangeRequest) {
	f, ok := d.flags("range", flagKeysOnly|flagCountOnly)
	if !ok {
		return
	}
	r.KeysOnly = f&flagKeysOnly != 0
	r.CountOnly = f&flagCountOnly != 0
	if o := d.byte("sort order"); o > byte(SortDescend) {
		d.fail(fmt.Sprintf("sort order %d out of range", o))
	} else {
		r.SortOrder = SortOrder(o)
	}
	if t := d.byte("sort target"); t > byte(SortByValue) {
		d.fail(fmt.Sprintf("sort target %d out of range", t))
	} else {
		r.SortTarget = SortTarget(t)
	}
	r.Key = d.bytes("range key")
	r.RangeEnd = d.bytes("range end")
	r.Limit = d.varint("range limit")
	r.Revision = d.varint("range revision")
	r.MinModRevision = d.varint("range min mod revision")
	r.MaxModRevision = d.varint("range max mod revision")
	r.MinCreateRevision = d.varint("range min create revision")
	r.MaxCreateRevision = d.varint("range max create revision")
}

func (d *decoder) txn(t *TxnRequest, depth int) {
	if depth > MaxTxnDepth {
		d.fail(fmt.Sprintf("txn nested deeper than %d", MaxTxnDepth))
		return
	}
	if n := d.count("compare", minCompareSize); n > 0 {
		t.Compare = make([]Compare, n)
		for i := range t.Compare {
			d.compare(&t.Compare[i])
		}
	}
	t.Success = d.ops(depth)
	t.Failure = d.ops(depth)
}

func (d *decoder) compare(c *Compare) {
	res, tgt := d.byte("compare result"), d.byte("compare target")
	if res > byte(CompareNotEqual) {
		d.fail(fmt.Sprintf("compare result %d out of range", res))
	}
	if tgt > byte(CompareLease) {
		d.fail(fmt.Sprintf("compare target %d out of range", tgt))
	}
	c.Result, c.Target = CompareResult(res), CompareTarget(tgt)
	c.Key = d.bytes("compare key")
	c.RangeEnd = d.bytes("compare range end")
	switch c.Target {
	case CompareValue:
		c.Value = d.bytes("compare value")
	case CompareVersion:
		c.Version = d.varint("compare version")
	case CompareCreate:
		c.CreateRevision = d.varint("compare create revision")
	case CompareMod:
		c.ModRevision = d.varint("compare mod revision")
	case CompareLease:
		c.Lease = d.varint("compare lease")
	}
}

func (d *decoder) ops(depth int) []RequestOp {
	n := d.count("txn op", minOpSize)
	if n == 0 {
		return nil
	}
	ops := make([]RequestOp, n)
	for i := range ops {
		if d.err != nil {
			return nil
		}
		switch k := d.byte("txn op kind"); k {
		case opRange:
			ops[i].Range = new(RangeRequest)
			d.rangeReq(ops[i].Range)
		case opPut:
			ops[i].Put = new(PutRequest)
			d.put(ops[i].Put)
		case opDeleteRange:
			ops[i].DeleteRange = new(DeleteRangeRequest)
			d.deleteRange(ops[i].DeleteRange)
		case opTxn:
			ops[i].Txn = new(TxnRequest)
			d.txn(ops[i].Txn, depth+1)
		default:
			d.fail(fmt.Sprintf("unknown txn op kind %d", k))
		}
	}
	return ops
}
