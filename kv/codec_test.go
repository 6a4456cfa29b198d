package kv

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	cmds := []Command{
		{Put: &PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: -3, PrevKv: true, IgnoreLease: false}},
		{Put: &PutRequest{Key: []byte("k"), IgnoreValue: true, IgnoreLease: true}},
		{DeleteRange: &DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, PrevKv: true}},
		{Compact: &CompactRequest{Revision: 1 << 40}},
		{LeaseGrant: &LeaseGrantRequest{ID: 7, TTL: 60}},
		{LeaseRevoke: &LeaseRevokeRequest{ID: -7}},
		{Txn: &TxnRequest{
			Compare: []Compare{
				{Result: CompareNotEqual, Target: CompareValue, Key: []byte("a"), RangeEnd: []byte("b"), Value: []byte("x")},
				{Result: CompareLess, Target: CompareMod, Key: []byte("a"), ModRevision: 9},
				{Target: CompareLease, Key: []byte("a"), Lease: 4},
			},
			Success: []RequestOp{
				{Range: &RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Limit: 3, Revision: 2,
					SortOrder: SortDescend, SortTarget: SortByValue, KeysOnly: true, CountOnly: true,
					MinModRevision: 1, MaxModRevision: 2, MinCreateRevision: 3, MaxCreateRevision: 4}},
				{Txn: &TxnRequest{Failure: []RequestOp{{DeleteRange: &DeleteRangeRequest{Key: []byte("q")}}}}},
			},
			Failure: []RequestOp{{Put: &PutRequest{Key: []byte("p"), Value: []byte("v")}}},
		}},
	}
	for _, c := range cmds {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("encode %s: %v", describe(c), err)
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("decode %s: %v", describe(c), err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip of %s: decoded command differs", describe(c))
		}
	}
}

func TestEncodeRejectsMalformedCommands(t *testing.T) {
	deep := &TxnRequest{}
	for range MaxTxnDepth {
		deep = &TxnRequest{Success: []RequestOp{{Txn: deep}}}
	}
	tests := []struct {
		name string
		cmd  Command
	}{
		{"no kind", Command{}},
		{"two kinds", Command{Put: &PutRequest{}, Compact: &CompactRequest{}}},
		{"empty op", Command{Txn: &TxnRequest{Success: []RequestOp{{}}}}},
		{"op with two kinds", Command{Txn: &TxnRequest{Success: []RequestOp{{Put: &PutRequest{}, Range: &RangeRequest{}}}}}},
		{"bad compare target", Command{Txn: &TxnRequest{Compare: []Compare{{Target: 9}}}}},
		{"bad compare result", Command{Txn: &TxnRequest{Compare: []Compare{{Result: -1}}}}},
		{"bad sort order", Command{Txn: &TxnRequest{Success: []RequestOp{{Range: &RangeRequest{SortOrder: 3}}}}}},
		{"too deep", Command{Txn: deep}},
	}
	for _, tt := range tests {
		if _, err := EncodeCommand(tt.cmd); err == nil {
			t.Errorf("%s: encoded, want an error", tt.name)
		}
	}
	// One level less deep is fine.
	if _, err := EncodeCommand(Command{Txn: deep.Success[0].Txn}); err != nil {
		t.Errorf("txn at MaxTxnDepth: %v", err)
	}
}

func TestDecodeRejectsMalformedInput(t *testing.T) {
	good := mustEncode(t, Command{Put: &PutRequest{Key: []byte("key"), Value: []byte("value")}})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"unknown kind", []byte{1, 77}},
		{"truncated", good[:len(good)-2]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"unknown flag", append([]byte{1, kindPut, 0x80}, good[3:]...)},
		{"length beyond input", []byte{1, kindPut, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge op count", []byte{1, kindTxn, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0}},
		{"bad compare target", []byte{1, kindTxn, 1, 0, 9, 0, 0, 0, 0, 0}},
		{"bad varint", []byte{1, kindCompact, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range tests {
		_, err := DecodeCommand(tt.b)
		if !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: got %v, want ErrBadCommand", tt.name, err)
		}
	}
	// A txn nested one level too deep, built by hand since the encoder
	// refuses it.
	b := []byte{1, kindTxn}
	for range MaxTxnDepth {
		b = append(b, 0, 1, opTxn)
	}
	b = append(b, 0, 0, 0)
	for range MaxTxnDepth {
		b = append(b, 0)
	}
	if _, err := DecodeCommand(b); !errors.Is(err, ErrBadCommand) {
		t.Errorf("too deep: got %v, want ErrBadCommand", err)
	}
}
