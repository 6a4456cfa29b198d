package raft

import (
	"slices"
	"testing"
)

func TestThreeNodesElectAndReplicate(t *testing.T) {
	c := newCluster(3, nil)
	c.campaign(1)
	if got := c.leader(); got != 1 {
		t.Fatalf("leader: got %d, want 1", got)
	}
	for _, d := range []string{"a", "b", "c"} {
		if err := c.propose(1, d); err != nil {
			t.Fatal(err)
		}
	}
	// Follower proposals are forwarded.
	if err := c.propose(2, "d"); err != nil {
		t.Fatal(err)
	}
	c.tick(1, 1)
	c.stabilize()
	want := []string{"a", "b", "c", "d"}
	for _, id := range c.ids {
		if got := c.appliedData(id); !slices.Equal(got, want) {
			t.Fatalf("node %d applied %v, want %v", id, got, want)
		}
	}
}
