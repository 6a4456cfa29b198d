package server

import (
	"testing"

	"github.com/lockstep/lockstep/kv"
)

// A result of one kind never passes for a command of another: propose
// refuses it with an internal error instead of handing it to a handler that
// would dereference the missing field.
func TestAnswersMatchesResultToCommandKind(t *testing.T) {
	// Each command with the result its kind produces.
	pairs := []struct {
		cmd kv.Command
		res kv.Result
	}{
		{kv.Command{Put: &kv.PutRequest{}}, kv.Result{Put: &kv.PutResponse{}}},
		{kv.Command{DeleteRange: &kv.DeleteRangeRequest{}}, kv.Result{DeleteRange: &kv.DeleteRangeResponse{}}},
		{kv.Command{Txn: &kv.TxnRequest{}}, kv.Result{Txn: &kv.TxnResponse{}}},
		{kv.Command{Compact: &kv.CompactRequest{}}, kv.Result{Compact: &kv.CompactResponse{}}},
		{kv.Command{LeaseGrant: &kv.LeaseGrantRequest{}}, kv.Result{LeaseGrant: &kv.LeaseGrantResponse{}}},
		{kv.Command{LeaseRevoke: &kv.LeaseRevokeRequest{}}, kv.Result{LeaseRevoke: &kv.LeaseRevokeResponse{}}},
	}
	for i, c := range pairs {
		for j, r := range pairs {
			if got := answers(c.cmd, r.res); got != (i == j) {
				t.Errorf("answers(command %d, result %d) = %v, want %v", i, j, got, i == j)
			}
		}
		if answers(c.cmd, kv.Result{}) {
			t.Errorf("an empty result answers command %d", i)
		}
	}
	if answers(kv.Command{}, pairs[0].res) {
		t.Error("an empty command is answered")
	}
}
