package kv

import (
	"fmt"
	"testing"
)

func TestLeases(t *testing.T) {
	h := newHarness(t, Config{})
	res := h.mustOK(Command{LeaseGrant: &LeaseGrantRequest{ID: 7, TTL: 30}})
	if g := res.LeaseGrant; g.ID != 7 || g.TTL != 30 || g.Revision != 1 {
		t.Fatalf("grant: got %+v, want id 7 ttl 30 at revision 1 (grants are not writes)", g)
	}
	h.grant(3, 10)
	wantErr(t, h.apply(Command{LeaseGrant: &LeaseGrantRequest{ID: 7, TTL: 1}}).Err, ErrLeaseExists)
	wantErr(t, h.apply(Command{LeaseGrant: &LeaseGrantRequest{ID: 0, TTL: 1}}).Err, ErrInvalidLeaseID)
	wantErr(t, h.apply(Command{LeaseGrant: &LeaseGrantRequest{ID: 8, TTL: MaxLeaseTTL + 1}}).Err, ErrLeaseTTLTooLarge)
	wantErr(t, h.putLease("x", "1", 99).Err, ErrLeaseNotFound)

	h.putLease("b", "1", 7) // 2
	h.putLease("a", "1", 7) // 3
	h.putLease("c", "1", 3) // 4
	h.putLease("c", "2", 7) // 5: moves c from lease 3 to 7
	h.putLease("d", "1", 7) // 6
	h.put("d", "2")         // 7: detaches d
	h.putLease("e", "1", 7) // 8
	h.del("e", "")          // 9: detaches e

	l, err := h.s.Lease(7)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(l.Keys); got != "a,b,c" || l.TTL != 30 {
		t.Fatalf("lease 7: got keys %q ttl %d, want a,b,c and 30", got, l.TTL)
	}
	if l, _ := h.s.Lease(3); len(l.Keys) != 0 {
		t.Fatalf("lease 3 keys: got %q, want none", keysOf(l.Keys))
	}
	if got := h.s.Leases(); fmt.Sprint(got) != fmt.Sprint([]Lease{{ID: 3, TTL: 10}, {ID: 7, TTL: 30}}) {
		t.Fatalf("leases: got %+v, want 3 and 7 in order", got)
	}

	var events []Event
	h.s.cfg.Notify = func(evs []Event) { events = append(events, evs...) }
	res = h.mustOK(Command{LeaseRevoke: &LeaseRevokeRequest{ID: 7}})
	if res.LeaseRevoke.Revision != 10 {
		t.Fatalf("revoke revision: got %d, want 10 (one write for all keys)", res.LeaseRevoke.Revision)
	}
	if len(events) != 3 || string(events[0].Kv.Key) != "a" || string(events[2].Kv.Key) != "c" || events[1].Type != EventDelete {
		t.Fatalf("revoke events: got %+v, want deletes of a, b, c", events)
	}
	if resp := h.rng(RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}); keyList(resp.Kvs) != "d" {
		t.Fatalf("keys after revoke: got %q, want d", keyList(resp.Kvs))
	}
	_, err = h.s.Lease(7)
	wantErr(t, err, ErrLeaseNotFound)
	wantErr(t, h.apply(Command{LeaseRevoke: &LeaseRevokeRequest{ID: 7}}).Err, ErrLeaseNotFound)

	// Revoking a lease without keys is not a write.
	h.mustOK(Command{LeaseRevoke: &LeaseRevokeRequest{ID: 3}})
	if h.s.Revision() != 10 {
		t.Fatalf("revision after revoking an empty lease: got %d, want 10", h.s.Revision())
	}
}

func keysOf(ks [][]byte) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return join(s)
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
