package main

import (
	"testing"

	"github.com/lockstep/lockstep/internal/leaktest"
)

// The example is the README's first contact with lockstep: it must keep
// running, failover and catch-up included.
func TestLedgerExampleRunsThroughFailover(t *testing.T) {
	defer leaktest.Check(t)()
	if err := run(false); err != nil {
		t.Fatal(err)
	}
}
