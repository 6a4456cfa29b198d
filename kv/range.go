package kv

import (
	"bytes"
	"cmp"
	"slices"
)

// rangeLocked serves r as if the current revision were curRev. It mirrors
// etcd's applier Range: limit+1 keys are fetched to set More, but sorting and
// the revision filters need every key, and Count always covers the whole
// range at the revision read.
func (s *Store) rangeLocked(r *RangeRequest, curRev int64) (*RangeResponse, error) {
	if len(r.Key) == 0 {
		return nil, ErrEmptyKey
	}
	rev := r.Revision
	if rev <= 0 {
		rev = curRev
	}
	if rev > curRev {
		return nil, ErrFutureRev
	}
	if rev < s.compactRev {
		return nil, ErrCompacted
	}
	limit := max(r.Limit, 0)
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	fetch := int64(0) // 0 means every key
	if limit > 0 && r.SortOrder == SortNone && !filtered {
		fetch = limit + 1
	}

	resp := &RangeResponse{Revision: curRev}
	if len(r.RangeEnd) == 0 {
		// The common single-key read, without the iterator closure.
		if rec, ok := s.idx.get(r.Key); ok {
			if v, ok := rec.at(rev); ok {
				resp.Count = 1
				if !r.CountOnly {
					resp.Kvs = []KeyValue{rec.kv(v)}
				}
			}
		}
	} else {
		s.idx.ascend(r.Key, r.RangeEnd, func(rec *keyRecord) bool {
			v, ok := rec.at(rev)
			if !ok {
				return true
			}
			resp.Count++
			if !r.CountOnly && (fetch == 0 || int64(len(resp.Kvs)) < fetch) {
				resp.Kvs = append(resp.Kvs, rec.kv(v))
			}
			return true
		})
	}

	if filtered {
		resp.Kvs = slices.DeleteFunc(resp.Kvs, func(kv KeyValue) bool {
			return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
				(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
				(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision) ||
				(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision)
		})
	}
	sortKvs(resp.Kvs, r.SortOrder, r.SortTarget)
	if limit > 0 && int64(len(resp.Kvs)) > limit {
		clear(resp.Kvs[limit:])
		resp.Kvs = resp.Kvs[:limit]
		resp.More = true
	}
	if r.KeysOnly {
		for i := range resp.Kvs {
			resp.Kvs[i].Value = nil
		}
	}
	return resp, nil
}

// sortKvs orders kvs (given in ascending key order) as etcd does: a target
// other than KEY with order NONE sorts ascending. Ties on the target are
// broken by key in the same direction, so the order is total and the same on
// every replica (etcd leaves it to an unstable sort).
func sortKvs(kvs []KeyValue, order SortOrder, target SortTarget) {
	if order == SortNone && target != SortByKey {
		order = SortAscend
	}
	if target == SortByKey && order != SortDescend {
		return // already ascending by key
	}
	byTarget := func(a, b KeyValue) int {
		var c int
		switch target {
		case SortByVersion:
			c = cmp.Compare(a.Version, b.Version)
		case SortByCreate:
			c = cmp.Compare(a.CreateRevision, b.CreateRevision)
		case SortByMod:
			c = cmp.Compare(a.ModRevision, b.ModRevision)
		case SortByValue:
			c = bytes.Compare(a.Value, b.Value)
		}
		if c == 0 {
			c = bytes.Compare(a.Key, b.Key)
		}
		return c
	}
	if order == SortDescend {
		slices.SortFunc(kvs, func(a, b KeyValue) int { return byTarget(b, a) })
	} else {
		slices.SortFunc(kvs, byTarget)
	}
}
