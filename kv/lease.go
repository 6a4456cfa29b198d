package kv

import (
	"bytes"
	"cmp"
	"slices"
)

func validateLeaseGrant(g *LeaseGrantRequest) error {
	switch {
	case g.ID == 0:
		return ErrInvalidLeaseID
	case g.TTL > MaxLeaseTTL:
		return ErrLeaseTTLTooLarge
	}
	return nil
}

func (s *Store) leaseGrantLocked(g *LeaseGrantRequest) (*LeaseGrantResponse, error) {
	if err := validateLeaseGrant(g); err != nil {
		return nil, err
	}
	if _, ok := s.leases[g.ID]; ok {
		return nil, ErrLeaseExists
	}
	s.leases[g.ID] = &lease{id: g.ID, ttl: g.TTL}
	return &LeaseGrantResponse{Revision: s.rev, ID: g.ID, TTL: g.TTL}, nil
}

// leaseRevokeLocked deletes the lease and its keys, in key order, as one
// write.
func (s *Store) leaseRevokeLocked(id int64) (*LeaseRevokeResponse, error) {
	l, ok := s.leases[id]
	if !ok {
		return nil, ErrLeaseNotFound
	}
	for _, k := range l.sortedKeys() {
		rec, ok := s.idx.get(k)
		if !ok {
			panic(errUnreachable.Error() + ": leased key missing from the index")
		}
		s.deleteLocked(rec)
	}
	delete(s.leases, id)
	s.endWriteLocked()
	return &LeaseRevokeResponse{Revision: s.rev}, nil
}

func (l *lease) sortedKeys() [][]byte {
	keys := make([][]byte, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

func (s *Store) attachLocked(id int64, key []byte) {
	if id == 0 {
		return
	}
	l := s.leases[id]
	if l.keys == nil {
		l.keys = make(map[string]struct{})
	}
	l.keys[string(key)] = struct{}{}
}

func (s *Store) detachLocked(id int64, key []byte) {
	if id == 0 {
		return
	}
	if l, ok := s.leases[id]; ok {
		delete(l.keys, string(key))
	}
}

// Lease returns the lease with the given ID and its attached keys, or
// ErrLeaseNotFound.
func (s *Store) Lease(id int64) (Lease, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.leases[id]
	if !ok {
		return Lease{}, ErrLeaseNotFound
	}
	return Lease{ID: l.id, TTL: l.ttl, Keys: l.sortedKeys()}, nil
}

// Leases returns every lease, without keys, in ascending ID order.
func (s *Store) Leases() []Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		out = append(out, Lease{ID: l.id, TTL: l.ttl})
	}
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
