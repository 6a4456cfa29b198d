package server

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// A put the leader cannot commit (its followers are gone) fails with etcd's
// "request timed out" once RequestTimeout passes, instead of waiting for
// the client to give up.
func TestPutThatCannotCommitTimesOut(t *testing.T) {
	const timeout = 700 * time.Millisecond
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.RequestTimeout = timeout })
	lead := c.waitLeader()
	cli := c.client(lead)
	ctx := testCtx(t)
	if _, err := cli.Put(ctx, "before", "v"); err != nil {
		t.Fatalf("put with a quorum: %v", err)
	}
	for i := range c.servers {
		if i != lead {
			c.stop(i)
		}
	}
	start := time.Now()
	_, err := cli.Put(ctx, "after", "v")
	took := time.Since(start)
	if !errors.Is(err, rpctypes.ErrTimeout) && !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("put without a quorum: got %v, want %v or %v", err, rpctypes.ErrTimeout, rpctypes.ErrNoLeader)
	}
	if errors.Is(err, rpctypes.ErrTimeout) && took < timeout*9/10 {
		t.Fatalf("put without a quorum timed out after %v, before RequestTimeout (%v)", took, timeout)
	}
	if took > 10*timeout {
		t.Fatalf("put without a quorum took %v; RequestTimeout is %v", took, timeout)
	}
	t.Logf("put without a quorum: %v after %v", err, took)
}
