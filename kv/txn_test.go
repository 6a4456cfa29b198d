package kv

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func cmpVal(key string, res CompareResult, val string) Compare {
	return Compare{Key: []byte(key), Target: CompareValue, Result: res, Value: []byte(val)}
}

func opPutKV(k, v string) RequestOp {
	return RequestOp{Put: &PutRequest{Key: []byte(k), Value: []byte(v)}}
}

func opGet(k string) RequestOp { return RequestOp{Range: &RangeRequest{Key: []byte(k)}} }

func opDel(k, end string) RequestOp {
	return RequestOp{DeleteRange: &DeleteRangeRequest{Key: []byte(k), RangeEnd: bs(end)}}
}

func txnCmd(cmp []Compare, success, failure []RequestOp) Command {
	return Command{Txn: &TxnRequest{Compare: cmp, Success: success, Failure: failure}}
}

func TestTxnCompares(t *testing.T) {
	h := newHarness(t, Config{})
	h.grant(5, 10)
	h.put("a", "10")        // rev 2, version 1
	h.put("a", "20")        // rev 3, version 2
	h.putLease("b", "x", 5) // rev 4
	h.put("r/1", "same")    // rev 5
	h.put("r/2", "same")    // rev 6
	tests := []struct {
		name string
		cmp  Compare
		want bool
	}{
		{"value equal", cmpVal("a", CompareEqual, "20"), true},
		{"value not equal", cmpVal("a", CompareNotEqual, "20"), false},
		{"value greater", cmpVal("a", CompareGreater, "1"), true},
		{"value less", cmpVal("a", CompareLess, "3"), true},
		{"value of missing key is always false", cmpVal("nope", CompareNotEqual, "x"), false},
		{"version equal", Compare{Key: []byte("a"), Target: CompareVersion, Version: 2}, true},
		{"version of missing key is 0", Compare{Key: []byte("nope"), Target: CompareVersion, Version: 0}, true},
		{"create revision", Compare{Key: []byte("a"), Target: CompareCreate, Result: CompareEqual, CreateRevision: 2}, true},
		{"create of missing key is 0 (lock recipe)", Compare{Key: []byte("nope"), Target: CompareCreate, CreateRevision: 0}, true},
		{"mod revision less", Compare{Key: []byte("a"), Target: CompareMod, Result: CompareLess, ModRevision: 3}, false},
		{"mod revision greater", Compare{Key: []byte("a"), Target: CompareMod, Result: CompareGreater, ModRevision: 2}, true},
		{"lease equal", Compare{Key: []byte("b"), Target: CompareLease, Lease: 5}, true},
		{"lease of unleased key is 0", Compare{Key: []byte("a"), Target: CompareLease, Lease: 0}, true},
		{"range: all keys must match", Compare{Key: []byte("r/"), RangeEnd: PrefixEnd([]byte("r/")), Target: CompareValue, Value: []byte("same")}, true},
		{"range: one key differs", Compare{Key: []byte("a"), RangeEnd: []byte{0}, Target: CompareValue, Value: []byte("same")}, false},
		{"range: max mod over range", Compare{Key: []byte("r/"), RangeEnd: PrefixEnd([]byte("r/")), Target: CompareMod, Result: CompareLess, ModRevision: 7}, true},
		{"empty range compares the zero kv", Compare{Key: []byte("q"), RangeEnd: []byte("r"), Target: CompareVersion, Result: CompareEqual, Version: 0}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.mustOK(txnCmd([]Compare{tt.cmp}, nil, nil))
			if res.Txn.Succeeded != tt.want {
				t.Fatalf("succeeded: got %v, want %v", res.Txn.Succeeded, tt.want)
			}
		})
	}
}

func TestTxnBranchesAndRevisions(t *testing.T) {
	h := newHarness(t, Config{})
	h.put("k", "v") // rev 2

	// Read-only txn: no revision bump.
	res := h.mustOK(txnCmd(nil, []RequestOp{opGet("k")}, nil)).Txn
	if !res.Succeeded || res.Revision != 2 || h.s.Revision() != 2 {
		t.Fatalf("read-only txn: got succeeded %v rev %d store rev %d, want true 2 2", res.Succeeded, res.Revision, h.s.Revision())
	}
	if got := keys(res.Responses[0].Range.Kvs); got != "k=v@2" {
		t.Fatalf("txn range: got %q, want k=v@2", got)
	}

	// Failure branch: two puts and a read of one of them, all at rev 3.
	res = h.mustOK(txnCmd([]Compare{cmpVal("k", CompareEqual, "other")},
		[]RequestOp{opPutKV("s", "1")},
		[]RequestOp{opPutKV("f1", "1"), opPutKV("f2", "2"), opGet("f1"), {Range: &RangeRequest{Key: []byte("f1"), Revision: 2}}})).Txn
	if res.Succeeded {
		t.Fatal("compare should fail")
	}
	if res.Revision != 3 || h.s.Revision() != 3 {
		t.Fatalf("write txn revision: got %d (store %d), want 3", res.Revision, h.s.Revision())
	}
	if got := keys(res.Responses[2].Range.Kvs); got != "f1=1@3" {
		t.Fatalf("txn reads its own write: got %q, want f1=1@3", got)
	}
	if len(res.Responses[3].Range.Kvs) != 0 {
		t.Fatalf("txn read at pre-txn revision sees its own write: %v", keys(res.Responses[3].Range.Kvs))
	}
	if _, ok := h.get("s"); ok {
		t.Fatal("success branch ran")
	}
	// Sub-revisions order the changes inside one revision.
	evs, _, err := h.s.Events(3, []byte{0}, []byte{0}, 0)
	if err != nil || len(evs) != 2 || string(evs[0].Kv.Key) != "f1" || string(evs[1].Kv.Key) != "f2" {
		t.Fatalf("events of txn: got %v %v, want f1 then f2", evs, err)
	}

	// A txn whose only write deletes nothing does not bump.
	res = h.mustOK(txnCmd(nil, []RequestOp{opDel("nothing", "")}, nil)).Txn
	if res.Revision != 3 || h.s.Revision() != 3 {
		t.Fatalf("no-op delete txn: got rev %d, want 3", res.Revision)
	}

	// Nested txn: its compares are read before the outer writes, as in etcd.
	res = h.mustOK(txnCmd(nil, []RequestOp{
		opPutKV("n", "outer"),
		{Txn: &TxnRequest{
			Compare: []Compare{{Key: []byte("n"), Target: CompareVersion, Version: 0}},
			Success: []RequestOp{opPutKV("n2", "saw n missing")},
			Failure: []RequestOp{opPutKV("n2", "saw n")},
		}},
	}, nil)).Txn
	if v, _ := h.get("n2"); string(v.Value) != "saw n missing" {
		t.Fatalf("nested compare: got %q, want it evaluated before the outer put", v.Value)
	}
	if !res.Responses[1].Txn.Succeeded || res.Responses[1].Txn.Responses[0].Put.Revision != 4 {
		t.Fatalf("nested response: got %+v", res.Responses[1].Txn)
	}
}

func TestTxnRejections(t *testing.T) {
	h := newHarness(t, Config{MaxTxnOps: 3})
	h.put("a", "1")
	h.put("b", "1")
	h.mustOK(Command{Compact: &CompactRequest{Revision: 3}})
	nested := func(success, failure []RequestOp) RequestOp {
		return RequestOp{Txn: &TxnRequest{Success: success, Failure: failure}}
	}
	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"too many ops", txnCmd(nil, []RequestOp{opGet("a"), opGet("a"), opGet("a"), opGet("a")}, nil), ErrTooManyOps},
		{"too many compares", txnCmd(make([]Compare, 4), nil, nil), ErrTooManyOps},
		{"too many ops nested", txnCmd(nil, []RequestOp{nested(nil, []RequestOp{opGet("a"), opGet("a"), opGet("a"), opGet("a")})}, nil), ErrTooManyOps},
		{"empty key in put", txnCmd(nil, []RequestOp{opPutKV("", "x")}, nil), ErrEmptyKey},
		{"empty key in range", txnCmd(nil, nil, []RequestOp{opGet("")}), ErrEmptyKey},
		{"empty key in unchosen branch still rejected", txnCmd(nil, nil, []RequestOp{opDel("", "")}), ErrEmptyKey},
		{"same key put twice", txnCmd(nil, []RequestOp{opPutKV("x", "1"), opPutKV("x", "2")}, nil), ErrDuplicateKey},
		{"put inside a deleted range", txnCmd(nil, []RequestOp{opDel("a", "z"), opPutKV("m", "1")}, nil), ErrDuplicateKey},
		{"put inside a from-key delete", txnCmd(nil, []RequestOp{opPutKV("m", "1"), opDel("a", "\x00")}, nil), ErrDuplicateKey},
		{"nested put against outer put", txnCmd(nil, []RequestOp{opPutKV("x", "1"), nested([]RequestOp{opPutKV("x", "2")}, nil)}, nil), ErrDuplicateKey},
		{"later nested delete against earlier nested put", txnCmd(nil, []RequestOp{nested([]RequestOp{opPutKV("x", "1")}, nil), nested([]RequestOp{opDel("x", "")}, nil)}, nil), ErrDuplicateKey},
		{"duplicate in failure branch", txnCmd(nil, nil, []RequestOp{opPutKV("x", "1"), opPutKV("x", "2")}), ErrDuplicateKey},
		{"put with unknown lease on chosen branch", txnCmd(nil, []RequestOp{{Put: &PutRequest{Key: []byte("x"), Lease: 9}}}, nil), ErrLeaseNotFound},
		{"range at compacted revision", txnCmd(nil, []RequestOp{{Range: &RangeRequest{Key: []byte("a"), Revision: 2}}}, nil), ErrCompacted},
		{"range at future revision", txnCmd(nil, []RequestOp{{Range: &RangeRequest{Key: []byte("a"), Revision: 4}}}, nil), ErrFutureRev},
		{"ignore value on missing key", txnCmd(nil, []RequestOp{{Put: &PutRequest{Key: []byte("nope"), IgnoreValue: true}}}, nil), ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.stateBytes()
			res := h.apply(tt.cmd)
			wantErr(t, res.Err, tt.want)
			// ValidateCommand agrees where the state does not matter.
			err := ValidateCommand(tt.cmd, Config{MaxTxnOps: 3})
			switch tt.want {
			case ErrTooManyOps, ErrEmptyKey, ErrDuplicateKey:
				wantErr(t, err, tt.want)
			default:
				if err != nil {
					t.Fatalf("ValidateCommand of a state-dependent rejection: got %v, want nil", err)
				}
			}
			if res.Txn != nil {
				t.Fatalf("rejected txn has a response: %+v", res.Txn)
			}
			if !bytes.Equal(h.stateBytes(), before) {
				t.Fatal("rejected txn changed the state")
			}
		})
	}

	ok := []struct {
		name string
		cmd  Command
	}{
		{"same key in both branches of a nested txn", txnCmd(nil, []RequestOp{nested([]RequestOp{opPutKV("x", "1")}, []RequestOp{opPutKV("x", "2")})}, nil)},
		{"same key in success and failure", txnCmd(nil, []RequestOp{opPutKV("x", "1")}, []RequestOp{opPutKV("x", "2")})},
		{"overlapping deletes", txnCmd(nil, []RequestOp{opDel("a", "c"), opDel("b", "d")}, nil)},
		{"nested put and delete in exclusive branches", txnCmd(nil, []RequestOp{nested([]RequestOp{opPutKV("y", "1")}, []RequestOp{opDel("y", "")})}, nil)},
		{"unknown lease on the branch not taken", txnCmd(nil, nil, []RequestOp{{Put: &PutRequest{Key: []byte("x"), Lease: 9}}})},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) { h.mustOK(tt.cmd) })
	}
}

// ReadTxn gives a read-only txn the result Apply would, on the same state,
// without a new revision; it refuses txns that may write, and reports the
// range errors Apply reports.
func TestReadTxn(t *testing.T) {
	h := newHarness(t, Config{})
	twin := newHarness(t, Config{}) // fed the same writes, applies the txns
	for _, x := range []*harness{h, twin} {
		x.put("a", "1")
		x.put("b", "2")
		x.put("a", "3")
	}
	nested := &TxnRequest{
		Compare: []Compare{cmpVal("b", CompareEqual, "2")},
		Success: []RequestOp{opGet("b"), {Range: &RangeRequest{Key: []byte("a"), Revision: 2}}},
	}
	for _, tc := range []struct {
		name string
		txn  *TxnRequest
	}{
		{"success branch", &TxnRequest{Compare: []Compare{cmpVal("a", CompareEqual, "3")}, Success: []RequestOp{opGet("a")}, Failure: []RequestOp{opGet("b")}}},
		{"failure branch", &TxnRequest{Compare: []Compare{cmpVal("a", CompareEqual, "1")}, Success: []RequestOp{opGet("a")}, Failure: []RequestOp{opGet("b")}}},
		{"compares only", &TxnRequest{Compare: []Compare{cmpVal("a", CompareEqual, "3")}}},
		{"nested", &TxnRequest{Success: []RequestOp{{Txn: nested}, opGet("a")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := h.s.Revision()
			got, err := h.s.ReadTxn(tc.txn)
			if err != nil {
				t.Fatal(err)
			}
			if h.s.Revision() != rev {
				t.Fatalf("revision moved from %d to %d", rev, h.s.Revision())
			}
			want := twin.mustOK(Command{Txn: tc.txn}).Txn
			if got.Succeeded != want.Succeeded || got.Revision != want.Revision || describeTxnResp(got) != describeTxnResp(want) {
				t.Fatalf("ReadTxn: %s (rev %d), Apply: %s (rev %d)", describeTxnResp(got), got.Revision, describeTxnResp(want), want.Revision)
			}
		})
	}

	writes := []*TxnRequest{
		{Success: []RequestOp{opPutKV("a", "x")}},
		{Failure: []RequestOp{opDel("a", "")}},
		{Success: []RequestOp{{Txn: &TxnRequest{Failure: []RequestOp{opPutKV("c", "x")}}}}},
	}
	for i, w := range writes {
		if _, err := h.s.ReadTxn(w); !errors.Is(err, ErrTxnWrites) {
			t.Errorf("txn %d may write: got %v, want ErrTxnWrites", i, err)
		}
	}
	if _, err := h.s.ReadTxn(&TxnRequest{Success: []RequestOp{{Range: &RangeRequest{Key: []byte("a"), Revision: 99}}}}); !errors.Is(err, ErrFutureRev) {
		t.Errorf("range at a future revision: got %v, want ErrFutureRev", err)
	}
	deep := &TxnRequest{}
	for range MaxTxnDepth {
		deep = &TxnRequest{Success: []RequestOp{{Txn: deep}}}
	}
	if _, err := h.s.ReadTxn(deep); !errors.Is(err, ErrBadCommand) {
		t.Errorf("txn nested %d deep: got %v, want ErrBadCommand", MaxTxnDepth+1, err)
	}
}

// describeTxnResp renders a txn response's branch and ranges, nested ones
// included.
func describeTxnResp(r *TxnResponse) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "succeeded=%v [", r.Succeeded)
	for _, op := range r.Responses {
		switch {
		case op.Range != nil:
			for _, kv := range op.Range.Kvs {
				fmt.Fprintf(&b, " %s=%s@%d", kv.Key, kv.Value, kv.ModRevision)
			}
			fmt.Fprintf(&b, " (count %d rev %d);", op.Range.Count, op.Range.Revision)
		case op.Txn != nil:
			fmt.Fprintf(&b, " {%s}", describeTxnResp(op.Txn))
		}
	}
	b.WriteString(" ]")
	return b.String()
}
