package kv

import (
	"errors"
	"fmt"
	"sync"
)

// DefaultMaxTxnOps is etcd's default limit on operations per txn level.
const DefaultMaxTxnOps = 128

// MaxLeaseTTL is the largest lease TTL in seconds, etcd's MaxLeaseTTL.
const MaxLeaseTTL = 9_000_000_000

// Config configures a Store. The zero value is valid. Every replica must use
// the same MaxTxnOps, since it decides which commands are rejected.
type Config struct {
	// MaxTxnOps bounds len(Compare), len(Success) and len(Failure) of every
	// txn level (etcd's --max-txn-ops); 0 means DefaultMaxTxnOps.
	MaxTxnOps int
	// Notify, if set, is called by Apply with the events of each command
	// that changed keys, in order, after the change is visible to readers
	// and before Apply returns. It is the hook the server fans watch events
	// out from; kv keeps no queue, so a slow Notify slows Apply (the bound
	// is the caller's to enforce). The slice and the PrevKv values it points
	// to are reused by the next Apply: copy what you keep. Notify may call
	// the Store's read methods but not Apply or Restore.
	Notify func(events []Event)
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.MaxTxnOps < 0 {
		return fmt.Errorf("kv: config MaxTxnOps is %d, want >= 0", c.MaxTxnOps)
	}
	return nil
}

// Store is the replicated key-value state machine. See the package doc for
// its determinism and concurrency contract.
type Store struct {
	cfg       Config // immutable after New
	maxTxnOps int

	// applyMu serializes Apply and Restore, so that Notify runs outside mu
	// and the write scratch below needs no other guard.
	// applyMu guards w.
	applyMu sync.Mutex
	w       writeState

	// mu guards the state below: Apply and Restore hold it for writing,
	// the read methods hold it for reading.
	mu  sync.RWMutex
	idx *index
	// Invariant: 0 <= compactRev <= rev; rev starts at 1, as in etcd.
	rev        int64
	compactRev int64
	applied    uint64
	// log lists every retained version with main >= compactRev in the
	// order the writes happened, for reading events by revision.
	log    []logEntry
	leases map[int64]*lease
}

type logEntry struct {
	main int64
	rec  *keyRecord
}

type lease struct {
	id, ttl int64
	// keys holds the keys whose current version is attached to the lease.
	keys map[string]struct{}
}

// writeState is the scratch of the command being applied.
type writeState struct {
	// changes counts the key changes of the current write; the write bumps
	// the revision only if it changed something, as in etcd. It is also the
	// next sub-revision.
	changes int64
	events  []Event
	prevs   []KeyValue
	prevIdx []int // prevIdx[i] indexes prevs for events[i], -1 for none
	sc      cmdScratch
}

// New returns an empty store at revision 1.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, maxTxnOps: cfg.MaxTxnOps}
	if s.maxTxnOps == 0 {
		s.maxTxnOps = DefaultMaxTxnOps
	}
	s.resetLocked()
	return s, nil
}

func (s *Store) resetLocked() {
	s.idx = newIndex()
	s.rev = 1
	s.compactRev = 0
	s.applied = 0
	s.log = nil
	s.leases = make(map[int64]*lease)
}

// Apply executes the command cmd, the log entry at index. A command that
// cannot be decoded or is rejected yields a Result with Err set and changes
// nothing but the applied index. The error return is for failures only
// (index not above the last applied one); the caller must stop the replica
// then, since applying on could diverge from the other replicas.
func (s *Store) Apply(index uint64, cmd []byte) (Result, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()

	s.mu.Lock()
	if index <= s.applied {
		applied := s.applied
		s.mu.Unlock()
		return Result{}, fmt.Errorf("%w: index %d, last applied %d", ErrIndexNotIncreasing, index, applied)
	}
	s.applied = index
	s.w.events = s.w.events[:0]
	s.w.prevs = s.w.prevs[:0]
	s.w.prevIdx = s.w.prevIdx[:0]
	var res Result
	var c Command
	if err := decodeCommandInto(cmd, &c, &s.w.sc); err != nil {
		res.Err = err
	} else {
		res = s.applyLocked(&c)
	}
	s.mu.Unlock()

	if s.cfg.Notify != nil && len(s.w.events) > 0 {
		for i, p := range s.w.prevIdx {
			if p >= 0 {
				s.w.events[i].PrevKv = &s.w.prevs[p]
			}
		}
		s.cfg.Notify(s.w.events)
	}
	if cap(s.w.events) > maxRetainedEvents {
		// One huge command (a revoke of many keys) should not pin its
		// scratch for the life of the store.
		s.w.events, s.w.prevs, s.w.prevIdx = nil, nil, nil
	}
	return res, nil
}

// maxRetainedEvents bounds the event scratch Apply keeps between commands.
const maxRetainedEvents = 4096

func (s *Store) applyLocked(c *Command) Result {
	switch {
	case c.Put != nil:
		resp, err := s.applyPutLocked(c.Put)
		return Result{Put: resp, Err: err}
	case c.DeleteRange != nil:
		resp, err := s.applyDeleteRangeLocked(c.DeleteRange)
		return Result{DeleteRange: resp, Err: err}
	case c.Txn != nil:
		resp, err := s.applyTxnLocked(c.Txn)
		return Result{Txn: resp, Err: err}
	case c.Compact != nil:
		resp, err := s.compactLocked(c.Compact.Revision)
		return Result{Compact: resp, Err: err}
	case c.LeaseGrant != nil:
		resp, err := s.leaseGrantLocked(c.LeaseGrant)
		return Result{LeaseGrant: resp, Err: err}
	case c.LeaseRevoke != nil:
		resp, err := s.leaseRevokeLocked(c.LeaseRevoke.ID)
		return Result{LeaseRevoke: resp, Err: err}
	}
	return Result{Err: fmt.Errorf("%w: no command kind set", ErrBadCommand)}
}

// endWriteLocked finishes a write: one new revision if anything changed.
func (s *Store) endWriteLocked() {
	if s.w.changes > 0 {
		s.rev++
	}
	s.w.changes = 0
}

// readRevLocked is the revision a read inside the current write sees: the
// write's own revision once it has changed something.
func (s *Store) readRevLocked() int64 {
	if s.w.changes > 0 {
		return s.rev + 1
	}
	return s.rev
}

// ValidateCommand runs the checks of Apply that depend on c alone, not on
// the store's state, and returns the error Apply would reject c with, so the
// server can refuse such a request before proposing it (as etcd does). A nil
// result does not promise that Apply accepts c.
func ValidateCommand(c Command, cfg Config) error {
	maxOps := cfg.MaxTxnOps
	if maxOps == 0 {
		maxOps = DefaultMaxTxnOps
	}
	switch {
	case c.Put != nil:
		return validatePut(c.Put)
	case c.DeleteRange != nil:
		return validateDeleteRange(c.DeleteRange)
	case c.Txn != nil:
		return validateTxn(c.Txn, maxOps)
	case c.LeaseGrant != nil:
		return validateLeaseGrant(c.LeaseGrant)
	}
	return nil
}

func validatePut(p *PutRequest) error {
	switch {
	case len(p.Key) == 0:
		return ErrEmptyKey
	case p.IgnoreValue && len(p.Value) != 0:
		return ErrValueProvided
	case p.IgnoreLease && p.Lease != 0:
		return ErrLeaseProvided
	}
	return nil
}

// checkPutLocked checks what a put needs from the current state.
func (s *Store) checkPutLocked(p *PutRequest) error {
	if p.Lease != 0 {
		if _, ok := s.leases[p.Lease]; !ok {
			return ErrLeaseNotFound
		}
	}
	if p.IgnoreValue || p.IgnoreLease {
		rec, ok := s.idx.get(p.Key)
		if !ok {
			return ErrKeyNotFound
		}
		if _, live := rec.latest(); !live {
			return ErrKeyNotFound
		}
	}
	return nil
}

func (s *Store) applyPutLocked(p *PutRequest) (*PutResponse, error) {
	if err := validatePut(p); err != nil {
		return nil, err
	}
	if err := s.checkPutLocked(p); err != nil {
		return nil, err
	}
	resp := s.putLocked(p)
	s.endWriteLocked()
	return resp, nil
}

// putLocked writes one key as the next change of the current write. The
// caller has validated and checked p.
func (s *Store) putLocked(p *PutRequest) *PutResponse {
	main, sub := s.rev+1, s.w.changes
	s.w.changes++

	var rec *keyRecord
	var value []byte
	if r, ok := s.idx.get(p.Key); ok {
		rec = r
		if len(p.Value) > 0 && !p.IgnoreValue {
			value = append([]byte(nil), p.Value...)
		}
	} else {
		// One allocation for a new key and its value.
		buf := make([]byte, len(p.Key)+len(p.Value))
		copy(buf, p.Key)
		copy(buf[len(p.Key):], p.Value)
		rec = &keyRecord{key: buf[:len(p.Key):len(p.Key)], versions: make([]version, 0, 1)}
		if len(p.Value) > 0 {
			value = buf[len(p.Key):]
		}
		s.idx.insert(rec)
	}

	nv := version{main: main, sub: sub, create: main, ver: 1, value: value, lease: p.Lease}
	prev, live := rec.latest()
	var prevKv KeyValue
	if live {
		prevKv = rec.kv(prev)
		nv.create = prev.create
		nv.ver = prev.ver + 1
		if p.IgnoreValue {
			nv.value = prev.value
		}
		if p.IgnoreLease {
			nv.lease = prev.lease
		}
	}
	if prevKv.Lease != nv.lease {
		s.detachLocked(prevKv.Lease, rec.key)
		s.attachLocked(nv.lease, rec.key)
	}
	rec.versions = append(rec.versions, nv)
	s.log = append(s.log, logEntry{main: main, rec: rec})

	if s.cfg.Notify != nil {
		s.recordEventLocked(EventPut, rec.kv(&nv), prevKv, live)
	}
	resp := &PutResponse{Revision: main}
	if p.PrevKv && live {
		resp.PrevKv = &prevKv
	}
	return resp
}

// deleteLocked writes a tombstone for rec as the next change of the current
// write, if the key is live, and returns the deleted version.
func (s *Store) deleteLocked(rec *keyRecord) (KeyValue, bool) {
	prev, live := rec.latest()
	if !live {
		return KeyValue{}, false
	}
	prevKv := rec.kv(prev)
	main, sub := s.rev+1, s.w.changes
	s.w.changes++
	s.detachLocked(prevKv.Lease, rec.key)
	rec.versions = append(rec.versions, version{main: main, sub: sub})
	s.log = append(s.log, logEntry{main: main, rec: rec})
	if s.cfg.Notify != nil {
		s.recordEventLocked(EventDelete, KeyValue{Key: rec.key, ModRevision: main}, prevKv, true)
	}
	return prevKv, true
}

func (s *Store) recordEventLocked(t EventType, kv, prev KeyValue, hasPrev bool) {
	s.w.events = append(s.w.events, Event{Type: t, Kv: kv})
	idx := -1
	if hasPrev {
		idx = len(s.w.prevs)
		s.w.prevs = append(s.w.prevs, prev)
	}
	s.w.prevIdx = append(s.w.prevIdx, idx)
}

func validateDeleteRange(d *DeleteRangeRequest) error {
	if len(d.Key) == 0 {
		return ErrEmptyKey
	}
	return nil
}

func (s *Store) applyDeleteRangeLocked(d *DeleteRangeRequest) (*DeleteRangeResponse, error) {
	if err := validateDeleteRange(d); err != nil {
		return nil, err
	}
	resp := s.deleteRangeLocked(d)
	s.endWriteLocked()
	resp.Revision = s.rev
	return resp, nil
}

func (s *Store) deleteRangeLocked(d *DeleteRangeRequest) *DeleteRangeResponse {
	resp := &DeleteRangeResponse{}
	s.idx.ascend(d.Key, d.RangeEnd, func(rec *keyRecord) bool {
		if prev, ok := s.deleteLocked(rec); ok {
			resp.Deleted++
			if d.PrevKv {
				resp.PrevKvs = append(resp.PrevKvs, prev)
			}
		}
		return true
	})
	resp.Revision = s.readRevLocked()
	return resp
}

// Range reads keys without going through the log. It may run concurrently
// with Apply and sees the state after some whole command.
func (s *Store) Range(r *RangeRequest) (*RangeResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rangeLocked(r, s.rev)
}

// Revision returns the current revision (1 for an empty store).
func (s *Store) Revision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// CompactRevision returns the revision of the last compaction, 0 if none:
// reads and events before it fail with ErrCompacted.
func (s *Store) CompactRevision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// AppliedIndex returns the log index of the last applied command.
func (s *Store) AppliedIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// errUnreachable marks a broken internal invariant; applying on could
// diverge, so it panics rather than return.
var errUnreachable = errors.New("kv: internal invariant broken")

// Stats describes the size of the retained state, for status reporting.
type Stats struct {
	// Keys counts indexed keys, including deleted keys whose history is
	// still retained.
	Keys int
	// Versions counts retained versions, tombstones included.
	Versions int
	// Bytes sums the key and value bytes of retained versions.
	Bytes  int64
	Leases int
}

// Stats walks the store and reports its size; it costs a pass over every
// key, so it is for status calls, not hot paths.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Keys: s.idx.len(), Leases: len(s.leases)}
	s.idx.tree.Ascend(func(it item) bool {
		st.Versions += len(it.rec.versions)
		st.Bytes += int64(len(it.key))
		for i := range it.rec.versions {
			st.Bytes += int64(len(it.rec.versions[i].value))
		}
		return true
	})
	return st
}
