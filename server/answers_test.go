package server

import (
	"testing"

	"github.com/lockstep/lockstep/kv"
)

// A result of one kind never passes for a command of another: propose
// refuses it with an internal error instead of handing it to a handler that
// would dereference the missing field.
func TestAnswersMatchesResultToCommandKind(t *testing.T) {
	cmds := []kv.Command{
		{Put: &kv.PutRequest{}},
		{DeleteRange: &kv.DeleteRangeRequest{}},
		{Txn: &kv.TxnRequest{}},
		{Compact: &kv.CompactRequest{}},
		{LeaseGrant: &kv.LeaseGrantRequest{}},
		{LeaseRevoke: &kv.LeaseRevokeRequest{}},
	}
	results := []kv.Result{
		{Put: &kv.PutResponse{}},
		{DeleteRange: &kv.DeleteRangeResponse{}},
		{Txn: &kv.TxnResponse{}},
		{Compact: &kv.CompactResponse{}},
		{LeaseGrant: &kv.LeaseGrantResponse{}},
		{LeaseRevoke: &kv.LeaseRevokeResponse{}},
	}
	for i, c := range cmds {
		for j, res := range results {
			if got := answers(c, res); got != (i == j) {
				t.Errorf("answers(command %d, result %d) = %v, want %v", i, j, got, i == j)
			}
		}
		if answers(c, kv.Result{}) {
			t.Errorf("an empty result answers command %d", i)
		}
	}
	if answers(kv.Command{}, results[0]) {
		t.Error("an empty command is answered")
	}
}
