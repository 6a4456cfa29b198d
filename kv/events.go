package kv

import (
	"fmt"
	"sort"
)

// DefaultEventsLimit is the events limit Events uses when given limit <= 0.
const DefaultEventsLimit = 1000

// maxEventsScanFactor bounds the log entries one Events call examines, as a
// multiple of its limit, so that a watch on a rarely written key does not
// hold the read lock over the whole history at once.
const maxEventsScanFactor = 64

// Events returns the retained events on key (or on [key, rangeEnd), with
// rangeEnd read as in RangeRequest) with revision >= fromRev, in the order
// they were applied, and the revision to pass as fromRev to continue.
//
// A call never splits a revision: it stops at the first revision boundary
// after limit events (<= 0 means DefaultEventsLimit), so one revision with
// more events than limit is returned whole. It also stops at a boundary after
// examining maxEventsScanFactor*limit events of other keys; next is then
// below Revision()+1 even if no events were returned, and the caller should
// call again. next == Revision()+1 means the caller has caught up.
//
// fromRev below CompactRevision() fails with ErrCompacted; fromRev <= 0 means
// 1. PrevKv is set when the previous version is retained.
func (s *Store) Events(fromRev int64, key, rangeEnd []byte, limit int) (evs []Event, next int64, err error) {
	if limit <= 0 {
		limit = DefaultEventsLimit
	}
	fromRev = max(fromRev, 1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if fromRev < s.compactRev {
		return nil, 0, fmt.Errorf("%w: events from revision %d, compacted at %d", ErrCompacted, fromRev, s.compactRev)
	}
	if fromRev > s.rev {
		return nil, fromRev, nil
	}
	if len(rangeEnd) == 0 {
		return s.keyEventsLocked(fromRev, key, limit)
	}

	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].main >= fromRev })
	scanBudget := maxEventsScanFactor * limit
	for ; i < len(s.log); i++ {
		e := s.log[i]
		if i > 0 && s.log[i-1].main != e.main && s.log[i-1].main >= fromRev &&
			(len(evs) >= limit || scanBudget <= 0) {
			return evs, e.main, nil
		}
		scanBudget--
		if !InRange(e.rec.key, key, rangeEnd) {
			continue
		}
		j, ok := e.rec.find(e.main)
		if !ok {
			panic(errUnreachable.Error() + ": log entry without version")
		}
		evs = append(evs, eventAt(e.rec, j))
	}
	return evs, s.rev + 1, nil
}

// keyEventsLocked serves Events for one key from the key's own history,
// which holds at most one event per revision.
func (s *Store) keyEventsLocked(fromRev int64, key []byte, limit int) ([]Event, int64, error) {
	rec, ok := s.idx.get(key)
	if !ok {
		return nil, s.rev + 1, nil
	}
	j, _ := rec.find(fromRev)
	var evs []Event
	for ; j < len(rec.versions); j++ {
		if len(evs) >= limit {
			return evs, rec.versions[j].main, nil
		}
		evs = append(evs, eventAt(rec, j))
	}
	return evs, s.rev + 1, nil
}

// eventAt builds the event that wrote rec.versions[j].
func eventAt(rec *keyRecord, j int) Event {
	v := &rec.versions[j]
	var ev Event
	if v.tombstone() {
		ev = Event{Type: EventDelete, Kv: KeyValue{Key: rec.key, ModRevision: v.main}}
	} else {
		ev = Event{Type: EventPut, Kv: rec.kv(v)}
	}
	if j > 0 && !rec.versions[j-1].tombstone() {
		prev := rec.kv(&rec.versions[j-1])
		ev.PrevKv = &prev
	}
	return ev
}
