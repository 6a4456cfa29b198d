package server

import (
	"testing"

	"github.com/lockstep/lockstep/kv"
)

// Results that carry key-values without bound are not answered on the
// apply loop.
func TestOnlySmallResultsAreAnsweredOnTheApplyLoop(t *testing.T) {
	kvs := []kv.KeyValue{{Key: []byte("k")}}
	for _, tc := range []struct {
		name  string
		res   kv.Result
		small bool
	}{
		{"put", kv.Result{Put: &kv.PutResponse{}}, true},
		{"put with its previous key-value", kv.Result{Put: &kv.PutResponse{PrevKv: &kvs[0]}}, true},
		{"delete", kv.Result{DeleteRange: &kv.DeleteRangeResponse{Deleted: 3}}, true},
		{"delete with previous key-values", kv.Result{DeleteRange: &kv.DeleteRangeResponse{PrevKvs: kvs}}, false},
		{"txn of puts", kv.Result{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{Put: &kv.PutResponse{}}}}}, true},
		{"txn with a range", kv.Result{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{Put: &kv.PutResponse{}}, {Range: &kv.RangeResponse{}}}}}, false},
		{"txn with a delete's previous key-values", kv.Result{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{DeleteRange: &kv.DeleteRangeResponse{PrevKvs: kvs}}}}}, false},
		{"txn in a txn with a range", kv.Result{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{Range: &kv.RangeResponse{}}}}}}}}, false},
		{"txn in a txn of puts", kv.Result{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{Txn: &kv.TxnResponse{Responses: []kv.ResponseOp{{Put: &kv.PutResponse{}}}}}}}}, true},
	} {
		if got := small(tc.res); got != tc.small {
			t.Errorf("%s: small = %v, want %v", tc.name, got, tc.small)
		}
	}
}
