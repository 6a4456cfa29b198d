package kv

import (
	"bytes"
	"sort"

	"github.com/google/btree"
)

// version is one entry of a key's history: a put, or a tombstone for a
// delete (ver == 0).
type version struct {
	// main and sub are the mod revision: main is the store revision of the
	// write, sub orders the changes within that write (etcd's sub-revision).
	main, sub int64
	create    int64
	ver       int64
	lease     int64
	value     []byte
}

func (v *version) tombstone() bool { return v.ver == 0 }

// keyRecord is the retained history of one key.
type keyRecord struct {
	key []byte
	// Invariant: versions is sorted by main, with at most one version per
	// main revision (txn validation forbids writing a key twice in one
	// write), and is never empty while the record is in the tree.
	// Invariant: an element is never modified once appended; compaction
	// replaces the slice instead. Snapshot relies on this to write a copied
	// slice header outside the lock.
	versions []version
}

// at returns the version visible at revision rev, if the key was live then.
func (r *keyRecord) at(rev int64) (*version, bool) {
	vs := r.versions
	i := len(vs) - 1
	if i < 0 {
		return nil, false
	}
	if vs[i].main > rev {
		// Find the last version with main <= rev.
		i = sort.Search(len(vs), func(j int) bool { return vs[j].main > rev }) - 1
		if i < 0 {
			return nil, false
		}
	}
	if vs[i].tombstone() {
		return nil, false
	}
	return &vs[i], true
}

// latest returns the key's current version if it is live.
func (r *keyRecord) latest() (*version, bool) {
	if len(r.versions) == 0 {
		return nil, false
	}
	v := &r.versions[len(r.versions)-1]
	if v.tombstone() {
		return nil, false
	}
	return v, true
}

// find returns the version written at main revision main.
func (r *keyRecord) find(main int64) (int, bool) {
	vs := r.versions
	i := sort.Search(len(vs), func(j int) bool { return vs[j].main >= main })
	return i, i < len(vs) && vs[i].main == main
}

func (r *keyRecord) kv(v *version) KeyValue {
	return KeyValue{Key: r.key, CreateRevision: v.create, ModRevision: v.main,
		Version: v.ver, Value: v.value, Lease: v.lease}
}

// item is what the B-tree holds. It is a value type so that probing the
// tree with a key does not allocate.
type item struct {
	key []byte
	rec *keyRecord
}

func itemLess(a, b item) bool { return bytes.Compare(a.key, b.key) < 0 }

const btreeDegree = 32

// index holds the key records twice: in a B-tree, in key order, for
// ranges, and in a hash map for the single keys most requests name. Once
// the tree outgrows the CPU's caches a lookup in it costs a cache miss per
// comparison (BenchmarkPutRandomShortKeys); one in the map costs one or
// two. Both are guarded by Store.mu.
type index struct {
	tree *btree.BTreeG[item]
	keys map[string]*keyRecord
	peak int // the most keys the map has held since it was last rebuilt
}

func newIndex() *index {
	return &index{tree: btree.NewG(btreeDegree, itemLess), keys: make(map[string]*keyRecord)}
}

func (x *index) len() int { return len(x.keys) }

func (x *index) get(key []byte) (*keyRecord, bool) {
	rec, ok := x.keys[string(key)]
	return rec, ok
}

// insert adds a record for a key the index does not hold.
func (x *index) insert(rec *keyRecord) {
	x.tree.ReplaceOrInsert(item{key: rec.key, rec: rec})
	x.keys[string(rec.key)] = rec
	x.peak = max(x.peak, len(x.keys))
}

// remove drops records the index holds.
func (x *index) remove(recs []*keyRecord) {
	for _, rec := range recs {
		x.tree.Delete(item{key: rec.key})
		delete(x.keys, string(rec.key))
	}
	// A Go map keeps its buckets when entries go: once half the keys are
	// gone, copy it, so that memory shrinks with the data.
	if len(x.keys) < x.peak/2 {
		m := make(map[string]*keyRecord, len(x.keys))
		for k, rec := range x.keys {
			m[k] = rec
		}
		x.keys, x.peak = m, len(m)
	}
}

// isFromKey reports whether end is "\x00", etcd's "every key >= key".
func isFromKey(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// ascend calls fn for each record in the range given as in RangeRequest,
// in key order, until fn returns false.
func (x *index) ascend(key, end []byte, fn func(*keyRecord) bool) {
	t := x.tree
	switch {
	case len(end) == 0:
		if rec, ok := x.get(key); ok {
			fn(rec)
		}
	case isFromKey(end):
		t.AscendGreaterOrEqual(item{key: key}, func(it item) bool { return fn(it.rec) })
	default:
		if bytes.Compare(key, end) >= 0 {
			return
		}
		t.AscendRange(item{key: key}, item{key: end}, func(it item) bool { return fn(it.rec) })
	}
}

// InRange reports whether k falls in the range key..end as a RangeRequest
// (or a watch) gives it: end empty is the one key, "\x00" every key from
// key on, otherwise [key, end).
func InRange(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case isFromKey(end):
		return bytes.Compare(k, key) >= 0
	default:
		return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
	}
}
