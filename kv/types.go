package kv

// The request and response types mirror etcd v3.5's etcdserverpb and mvccpb
// messages field for field where kv has the concept, so that package server
// can translate between them mechanically. Revisions, versions and lease IDs
// stay int64 because that is what travels on etcd's wire; a separate Go type
// would only add conversions at the one boundary that uses them.
//
// Byte slices in responses and events alias the store's memory. The store
// never modifies a byte slice after storing it, so they stay valid and
// unchanged forever, but callers must not modify them either.

// KeyValue is one version of a key (mvccpb.KeyValue).
type KeyValue struct {
	Key []byte
	// CreateRevision is the revision of the put that created the key's
	// current generation (the first put after the key was absent).
	CreateRevision int64
	// ModRevision is the revision of the write that produced this version.
	ModRevision int64
	// Version counts the puts in the key's current generation, starting at 1.
	// A delete resets it: the next put starts a new generation at 1.
	Version int64
	Value   []byte
	// Lease is the ID of the lease the key is attached to, 0 for none.
	Lease int64
}

// SortOrder is RangeRequest.SortOrder; values match etcd's enum.
type SortOrder int32

const (
	SortNone    SortOrder = 0
	SortAscend  SortOrder = 1
	SortDescend SortOrder = 2
)

// SortTarget is RangeRequest.SortTarget; values match etcd's enum.
type SortTarget int32

const (
	SortByKey     SortTarget = 0
	SortByVersion SortTarget = 1
	SortByCreate  SortTarget = 2
	SortByMod     SortTarget = 3
	SortByValue   SortTarget = 4
)

// RangeRequest reads the keys in [Key, RangeEnd) (etcdserverpb.RangeRequest).
//
// An empty RangeEnd reads the single key Key. RangeEnd "\x00" reads every key
// >= Key. Use PrefixEnd to read a prefix.
type RangeRequest struct {
	Key      []byte
	RangeEnd []byte
	// Limit caps the number of keys returned; <= 0 means no limit.
	Limit int64
	// Revision is the revision to read at; <= 0 means the current revision.
	Revision   int64
	SortOrder  SortOrder
	SortTarget SortTarget
	KeysOnly   bool
	CountOnly  bool
	// The filters drop keys outside the bounds; 0 disables a bound. As in
	// etcd, they do not change Count.
	MinModRevision    int64
	MaxModRevision    int64
	MinCreateRevision int64
	MaxCreateRevision int64
}

// RangeResponse answers a RangeRequest.
type RangeResponse struct {
	// Revision is the store's revision when the range was served (the
	// response header revision), not the revision read at.
	Revision int64
	Kvs      []KeyValue
	// More reports that Limit cut the result short.
	More bool
	// Count is the number of keys in the range at the revision read,
	// regardless of Limit and of the revision filters.
	Count int64
}

// PutRequest writes one key (etcdserverpb.PutRequest).
type PutRequest struct {
	Key   []byte
	Value []byte
	// Lease attaches the key to a lease; 0 detaches it.
	Lease  int64
	PrevKv bool
	// IgnoreValue keeps the key's current value; the key must exist and
	// Value must be empty.
	IgnoreValue bool
	// IgnoreLease keeps the key's current lease; the key must exist and
	// Lease must be 0.
	IgnoreLease bool
}

// PutResponse answers a PutRequest.
type PutResponse struct {
	Revision int64
	// PrevKv is the key's previous version, when PrevKv was requested and
	// the key existed.
	PrevKv *KeyValue
}

// DeleteRangeRequest deletes the keys in [Key, RangeEnd), with RangeEnd
// interpreted as in RangeRequest (etcdserverpb.DeleteRangeRequest).
type DeleteRangeRequest struct {
	Key      []byte
	RangeEnd []byte
	PrevKv   bool
}

// DeleteRangeResponse answers a DeleteRangeRequest.
type DeleteRangeResponse struct {
	Revision int64
	Deleted  int64
	PrevKvs  []KeyValue
}

// CompareResult is the relation a Compare tests; values match etcd's enum.
type CompareResult int32

const (
	CompareEqual    CompareResult = 0
	CompareGreater  CompareResult = 1
	CompareLess     CompareResult = 2
	CompareNotEqual CompareResult = 3
)

// CompareTarget is the field a Compare reads; values match etcd's enum.
type CompareTarget int32

const (
	CompareVersion CompareTarget = 0
	CompareCreate  CompareTarget = 1
	CompareMod     CompareTarget = 2
	CompareValue   CompareTarget = 3
	CompareLease   CompareTarget = 4
)

// Compare is one guard of a txn (etcdserverpb.Compare): every key in
// [Key, RangeEnd) at the current revision must satisfy
// "field Result operand". A missing key has zero fields, except that a VALUE
// compare on a missing key is always false, as in etcd.
type Compare struct {
	Result   CompareResult
	Target   CompareTarget
	Key      []byte
	RangeEnd []byte
	// The operand: only the field selected by Target is read (etcd's
	// target_union).
	Version        int64
	CreateRevision int64
	ModRevision    int64
	Value          []byte
	Lease          int64
}

// RequestOp is one operation of a txn branch; exactly one field is set.
type RequestOp struct {
	Range       *RangeRequest
	Put         *PutRequest
	DeleteRange *DeleteRangeRequest
	Txn         *TxnRequest
}

// ResponseOp is the result of one RequestOp; the field matching the request
// is set.
type ResponseOp struct {
	Range       *RangeResponse
	Put         *PutResponse
	DeleteRange *DeleteRangeResponse
	Txn         *TxnResponse
}

// TxnRequest runs Success if every Compare holds, else Failure, atomically
// at one revision (etcdserverpb.TxnRequest).
type TxnRequest struct {
	Compare []Compare
	Success []RequestOp
	Failure []RequestOp
}

// TxnResponse answers a TxnRequest.
type TxnResponse struct {
	Revision  int64
	Succeeded bool
	Responses []ResponseOp
}

// CompactRequest discards history before Revision.
type CompactRequest struct {
	Revision int64
}

// CompactResponse answers a CompactRequest.
type CompactResponse struct {
	Revision int64
}

// LeaseGrantRequest creates a lease. kv has no clock: TTL is recorded and
// reported, and the leader expires the lease by proposing a LeaseRevoke.
type LeaseGrantRequest struct {
	// ID is the lease to create; it must not be 0 (the server picks an ID
	// before proposing, as etcd does).
	ID int64
	// TTL is the time to live in seconds, as granted; the server applies
	// any minimum before proposing.
	TTL int64
}

// LeaseGrantResponse answers a LeaseGrantRequest.
type LeaseGrantResponse struct {
	Revision int64
	ID       int64
	TTL      int64
}

// LeaseRevokeRequest deletes a lease and every key attached to it, in one
// write at one revision.
type LeaseRevokeRequest struct {
	ID int64
}

// LeaseRevokeResponse answers a LeaseRevokeRequest.
type LeaseRevokeResponse struct {
	Revision int64
}

// Lease describes a granted lease.
type Lease struct {
	ID int64
	// TTL is the granted time to live in seconds.
	TTL int64
	// Keys are the keys attached to the lease, in ascending order; filled by
	// Store.Lease only.
	Keys [][]byte
}

// Command is one replicated write; exactly one field is set. It is what
// EncodeCommand turns into log bytes and Store.Apply executes.
type Command struct {
	Put         *PutRequest
	DeleteRange *DeleteRangeRequest
	Txn         *TxnRequest
	Compact     *CompactRequest
	LeaseGrant  *LeaseGrantRequest
	LeaseRevoke *LeaseRevokeRequest
}

// Result is the outcome of applying one command. Exactly one of Err and the
// response field matching the command is set. Err is a deterministic
// rejection (every replica rejects the same command the same way), never a
// failure of the replica.
type Result struct {
	Err         error
	Put         *PutResponse
	DeleteRange *DeleteRangeResponse
	Txn         *TxnResponse
	Compact     *CompactResponse
	LeaseGrant  *LeaseGrantResponse
	LeaseRevoke *LeaseRevokeResponse
}

// EventType is the kind of a watch event; values match mvccpb.Event_EventType.
type EventType int32

const (
	EventPut    EventType = 0
	EventDelete EventType = 1
)

// Event is one change to one key (mvccpb.Event). For a delete, Kv holds only
// Key and ModRevision, as in etcd.
type Event struct {
	Type EventType
	Kv   KeyValue
	// PrevKv is the key's version before the change, nil if the key did not
	// exist (or that version was compacted away).
	PrevKv *KeyValue
}

// PrefixEnd returns the RangeEnd that makes a range cover every key with the
// given prefix ("\x00", meaning all keys, when no such end exists).
func PrefixEnd(prefix []byte) []byte {
	end := make([]byte, len(prefix))
	copy(end, prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
