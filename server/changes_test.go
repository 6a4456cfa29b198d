package server

import (
	"fmt"
	"testing"

	"github.com/lockstep/lockstep/kv"
)

// A write wakes the watchers of its keys, and only those; a restored
// snapshot wakes every watcher.
func TestChangesWakeOnlyTheWatchersOfTheKeysWritten(t *testing.T) {
	c := newChanges()
	single := c.subscribe([]byte("a"), nil)
	prefix := c.subscribe([]byte("p/"), []byte("p0")) // the prefix p/
	fromKey := c.subscribe([]byte("m"), []byte{0})
	var idle []*subscription
	for i := range 1000 {
		idle = append(idle, c.subscribe([]byte(fmt.Sprintf("idle/%d", i)), nil))
	}
	woken := func(s *subscription) bool {
		select {
		case <-s.wake:
			return true
		default:
			return false
		}
	}
	put := func(keys ...string) {
		var evs []kv.Event
		for _, k := range keys {
			evs = append(evs, kv.Event{Type: kv.EventPut, Kv: kv.KeyValue{Key: []byte(k)}})
		}
		c.notify(evs)
	}
	for _, tc := range []struct {
		keys                   []string
		single, prefix, fromKy bool
	}{
		{[]string{"a"}, true, false, false},
		{[]string{"ab"}, false, false, false},
		{[]string{"p/x"}, false, true, true}, // "p/x" >= "m"
		{[]string{"p0"}, false, false, true},
		{[]string{"b", "z"}, false, false, true},
		{[]string{"a", "p/"}, true, true, true},
		{[]string{"l"}, false, false, false},
	} {
		put(tc.keys...)
		if got := [3]bool{woken(single), woken(prefix), woken(fromKey)}; got != [3]bool{tc.single, tc.prefix, tc.fromKy} {
			t.Errorf("write of %q woke (key a, prefix p/, from m) = %v, want %v", tc.keys, got, [3]bool{tc.single, tc.prefix, tc.fromKy})
		}
	}
	for _, s := range idle {
		if woken(s) {
			t.Fatalf("a watcher of %s was woken by writes of other keys", s.key)
		}
	}

	// Two writes before the watcher looks leave one wake-up, not a queue.
	put("a")
	put("a")
	if !woken(single) || woken(single) {
		t.Fatal("two writes: want exactly one pending wake-up")
	}

	c.notify(nil)
	for _, s := range append([]*subscription{single, prefix, fromKey}, idle...) {
		if !woken(s) {
			t.Fatalf("a restored snapshot did not wake the watcher of %s", s.key)
		}
	}

	c.unsubscribe(single)
	put("a")
	if woken(single) {
		t.Fatal("an unsubscribed watcher was woken")
	}
	for _, s := range idle {
		c.unsubscribe(s)
	}
	c.unsubscribe(prefix)
	c.unsubscribe(fromKey)
	if len(c.keys) != 0 || len(c.ranges) != 0 {
		t.Fatalf("after unsubscribing all: %d keys and %d ranges left", len(c.keys), len(c.ranges))
	}
}
