package kv

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
)

// applyTxnLocked runs a txn in etcd's order: validate the request, evaluate
// every compare on the chosen path against the state before the txn (nested
// txns too), check what the chosen ops need from that state, and only then
// execute, so that a rejected txn changes nothing.
func (s *Store) applyTxnLocked(t *TxnRequest) (*TxnResponse, error) {
	if err := validateTxn(t, s.maxTxnOps); err != nil {
		return nil, err
	}
	rev := s.rev
	path := s.txnPathLocked(t, rev, make([]bool, 0, 4))
	if _, err := s.checkTxnLocked(t, path, rev, true); err != nil {
		return nil, err
	}
	if _, err := s.checkTxnLocked(t, path, rev, false); err != nil {
		return nil, err
	}
	resp, _ := s.execTxnLocked(t, path)
	s.endWriteLocked()
	resp.Revision = s.rev
	return resp, nil
}

// ReadTxn runs a txn that writes nothing against the current state, without
// going through the log, as etcd serves such txns: its compares and ranges
// see one revision, as in Apply, and the revision does not move. It may run
// concurrently with Apply and sees the state after some whole command. A
// txn with a put or a delete on either branch, at any depth, gets
// ErrTxnWrites (see TxnIsReadOnly).
func (s *Store) ReadTxn(t *TxnRequest) (*TxnResponse, error) {
	if deeperThan(t, MaxTxnDepth) {
		return nil, fmt.Errorf("%w: txn nested deeper than %d", ErrBadCommand, MaxTxnDepth)
	}
	if !TxnIsReadOnly(t) {
		return nil, ErrTxnWrites
	}
	if err := validateTxnOps(t, s.maxTxnOps); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rev := s.rev
	path := s.txnPathLocked(t, rev, make([]bool, 0, 4))
	if _, err := s.checkTxnLocked(t, path, rev, false); err != nil {
		return nil, err
	}
	// With nothing to write, execTxnLocked only reads: the shared lock is
	// enough.
	resp, _ := s.execTxnLocked(t, path)
	resp.Revision = rev
	return resp, nil
}

// deeperThan reports whether txns nest in t deeper than depth levels (t
// itself is level 1), looking no deeper than that.
func deeperThan(t *TxnRequest, depth int) bool {
	if depth == 0 {
		return true
	}
	for _, ops := range [2][]RequestOp{t.Success, t.Failure} {
		for i := range ops {
			if ops[i].Txn != nil && deeperThan(ops[i].Txn, depth-1) {
				return true
			}
		}
	}
	return false
}

// TxnIsReadOnly reports whether t has no put and no delete on either branch,
// nested txns included: whichever way its compares go, it writes nothing.
func TxnIsReadOnly(t *TxnRequest) bool {
	for _, ops := range [2][]RequestOp{t.Success, t.Failure} {
		for i := range ops {
			op := &ops[i]
			switch {
			case op.Put != nil, op.DeleteRange != nil:
				return false
			case op.Txn != nil && !TxnIsReadOnly(op.Txn):
				return false
			}
		}
	}
	return true
}

// validateTxn checks the request alone: etcd's checkTxnRequest, then its
// duplicate key check.
func validateTxn(t *TxnRequest, maxOps int) error {
	if err := validateTxnOps(t, maxOps); err != nil {
		return err
	}
	return checkTxnWrites(t)
}

func validateTxnOps(t *TxnRequest, maxOps int) error {
	if max(len(t.Compare), len(t.Success), len(t.Failure)) > maxOps {
		return ErrTooManyOps
	}
	for _, ops := range [2][]RequestOp{t.Success, t.Failure} {
		for i := range ops {
			op := &ops[i]
			var err error
			switch {
			case op.Range != nil:
				if len(op.Range.Key) == 0 {
					err = ErrEmptyKey
				}
			case op.Put != nil:
				err = validatePut(op.Put)
			case op.DeleteRange != nil:
				err = validateDeleteRange(op.DeleteRange)
			case op.Txn != nil:
				err = validateTxnOps(op.Txn, maxOps)
			default:
				err = ErrBadCommand
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// span is a key range as in RangeRequest: empty end is one key, "\x00" is
// every key >= start.
type span struct{ start, end []byte }

// ownedKey is a put key tagged with the op of the list it comes from.
type ownedKey struct {
	key   []byte
	owner int
}

// checkTxnWrites rejects a txn whose chosen branch could write one key twice
// at one revision: two puts of a key, or a put of a key a delete covers.
// Like etcd it checks both branches of every txn without evaluating compares,
// and allows the same key in the two branches of one nested txn since only
// one of them runs. Unlike etcd it checks the ops of a list symmetrically
// and treats a "\x00" range end as unbounded, so it also rejects the few
// conflicting txns etcd lets through.
func checkTxnWrites(t *TxnRequest) error {
	for _, ops := range [2][]RequestOp{t.Success, t.Failure} {
		if _, _, err := writesOf(ops); err != nil {
			return err
		}
	}
	return nil
}

// writesOf returns the distinct keys ops may put and the ranges they may
// delete, or ErrDuplicateKey if two ops conflict.
func writesOf(ops []RequestOp) ([][]byte, []span, error) {
	var puts []ownedKey
	var dels []span
	var delOwner []int
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Put != nil:
			puts = append(puts, ownedKey{op.Put.Key, i})
		case op.DeleteRange != nil:
			dels = append(dels, span{op.DeleteRange.Key, op.DeleteRange.RangeEnd})
			delOwner = append(delOwner, i)
		case op.Txn != nil:
			pt, dt, err := writesOf(op.Txn.Success)
			if err != nil {
				return nil, nil, err
			}
			pf, df, err := writesOf(op.Txn.Failure)
			if err != nil {
				return nil, nil, err
			}
			// A key in both branches is one possible write, not two.
			both := append(pt, pf...)
			slices.SortFunc(both, bytes.Compare)
			both = slices.CompactFunc(both, bytes.Equal)
			for _, k := range both {
				puts = append(puts, ownedKey{k, i})
			}
			for _, d := range append(dt, df...) {
				dels = append(dels, d)
				delOwner = append(delOwner, i)
			}
		}
	}
	if len(puts) == 0 {
		return nil, dels, nil
	}
	slices.SortFunc(puts, func(a, b ownedKey) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(puts); i++ {
		if bytes.Equal(puts[i-1].key, puts[i].key) {
			return nil, nil, ErrDuplicateKey
		}
	}
	for j, d := range dels {
		i := sort.Search(len(puts), func(i int) bool { return bytes.Compare(puts[i].key, d.start) >= 0 })
		for ; i < len(puts) && InRange(puts[i].key, d.start, d.end); i++ {
			if puts[i].owner != delOwner[j] {
				return nil, nil, ErrDuplicateKey
			}
		}
	}
	keys := make([][]byte, len(puts))
	for i := range puts {
		keys[i] = puts[i].key
	}
	return keys, dels, nil
}

// txnPathLocked appends, in pre-order, whether each txn on the chosen path
// succeeds, with every compare read at rev (etcd's compareToPath).
func (s *Store) txnPathLocked(t *TxnRequest, rev int64, path []bool) []bool {
	ok := true
	for i := range t.Compare {
		if !s.compareLocked(&t.Compare[i], rev) {
			ok = false
			break
		}
	}
	path = append(path, ok)
	ops := t.Failure
	if ok {
		ops = t.Success
	}
	for i := range ops {
		if ops[i].Txn != nil {
			path = s.txnPathLocked(ops[i].Txn, rev, path)
		}
	}
	return path
}

// compareLocked evaluates c at rev: every key in the range must satisfy it.
func (s *Store) compareLocked(c *Compare, rev int64) bool {
	ok, any := true, false
	s.idx.ascend(c.Key, c.RangeEnd, func(rec *keyRecord) bool {
		v, live := rec.at(rev)
		if !live {
			return true
		}
		any = true
		ok = compareKV(c, rec.kv(v))
		return ok
	})
	if !any {
		if c.Target == CompareValue {
			// A missing key has no value to compare, as in etcd.
			return false
		}
		return compareKV(c, KeyValue{})
	}
	return ok
}

func compareKV(c *Compare, kv KeyValue) bool {
	var r int
	switch c.Target {
	case CompareValue:
		r = bytes.Compare(kv.Value, c.Value)
	case CompareCreate:
		r = cmpInt(kv.CreateRevision, c.CreateRevision)
	case CompareMod:
		r = cmpInt(kv.ModRevision, c.ModRevision)
	case CompareVersion:
		r = cmpInt(kv.Version, c.Version)
	case CompareLease:
		r = cmpInt(kv.Lease, c.Lease)
	}
	switch c.Result {
	case CompareEqual:
		return r == 0
	case CompareNotEqual:
		return r != 0
	case CompareGreater:
		return r > 0
	case CompareLess:
		return r < 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkTxnLocked checks the ops on the chosen path against the state at rev:
// puts when puts is true (lease exists, key exists for ignore_*), else ranges
// (revision readable). etcd checks all puts before all ranges; so does kv, so
// that a txn failing both ways reports the same error.
func (s *Store) checkTxnLocked(t *TxnRequest, path []bool, rev int64, puts bool) ([]bool, error) {
	ops := t.Failure
	if path[0] {
		ops = t.Success
	}
	path = path[1:]
	for i := range ops {
		op := &ops[i]
		var err error
		switch {
		case op.Put != nil && puts:
			err = s.checkPutLocked(op.Put)
		case op.Range != nil && !puts:
			switch r := op.Range.Revision; {
			case r <= 0:
			case r > rev:
				err = ErrFutureRev
			case r < s.compactRev:
				err = ErrCompacted
			}
		case op.Txn != nil:
			path, err = s.checkTxnLocked(op.Txn, path, rev, puts)
		}
		if err != nil {
			return nil, err
		}
	}
	return path, nil
}

// execTxnLocked runs the ops on the chosen path; checks have passed, so
// nothing here can be rejected.
func (s *Store) execTxnLocked(t *TxnRequest, path []bool) (*TxnResponse, []bool) {
	resp := &TxnResponse{Succeeded: path[0]}
	path = path[1:]
	ops := t.Failure
	if resp.Succeeded {
		ops = t.Success
	}
	if len(ops) > 0 {
		resp.Responses = make([]ResponseOp, len(ops))
	}
	for i := range ops {
		op := &ops[i]
		out := &resp.Responses[i]
		switch {
		case op.Range != nil:
			r, err := s.rangeLocked(op.Range, s.readRevLocked())
			if err != nil {
				panic(errUnreachable.Error() + ": checked txn range failed: " + err.Error())
			}
			out.Range = r
		case op.Put != nil:
			out.Put = s.putLocked(op.Put)
		case op.DeleteRange != nil:
			out.DeleteRange = s.deleteRangeLocked(op.DeleteRange)
		case op.Txn != nil:
			out.Txn, path = s.execTxnLocked(op.Txn, path)
		}
	}
	resp.Revision = s.readRevLocked()
	return resp, path
}
