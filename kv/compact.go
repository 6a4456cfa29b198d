package kv

import "slices"

// compactLocked discards the history before rev. Reads at rev and later are
// unaffected: each key keeps its newest version at or below rev if the key
// was live at rev. A tombstone written at exactly rev is kept too, so that
// Events from rev (the earliest allowed) still reports that delete; it goes
// with the next compaction. The revision does not change.
func (s *Store) compactLocked(rev int64) (*CompactResponse, error) {
	if rev <= s.compactRev {
		return nil, ErrCompacted
	}
	if rev > s.rev {
		return nil, ErrFutureRev
	}
	var gone []*keyRecord
	s.idx.tree.Ascend(func(it item) bool {
		vs := it.rec.versions
		// i is the first version to keep.
		i := len(vs)
		for i > 0 && vs[i-1].main > rev {
			i--
		}
		if i == 0 {
			return true // every version is newer than rev
		}
		i-- // the newest version at or below rev
		if vs[i].tombstone() && vs[i].main < rev {
			i++
		}
		switch {
		case i == 0:
		case i == len(vs):
			gone = append(gone, it.rec)
		default:
			// Copy rather than reslice, so the dropped versions' memory is
			// freed.
			it.rec.versions = slices.Clone(vs[i:])
		}
		return true
	})
	s.idx.remove(gone)

	i := 0
	for i < len(s.log) && s.log[i].main < rev {
		i++
	}
	s.log = slices.Clone(s.log[i:])
	s.compactRev = rev
	return &CompactResponse{Revision: s.rev}, nil
}
