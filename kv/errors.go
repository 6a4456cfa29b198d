package kv

import "errors"

// Application errors: deterministic rejections of a request, returned in
// Result.Err by Apply and by the read methods. Every replica rejects the same
// command with the same error, so they are outcomes, not replica failures.
// The wording follows etcd's so the server can map each to etcd's error.
var (
	ErrEmptyKey         = errors.New("kv: key is not provided")
	ErrKeyNotFound      = errors.New("kv: key not found")
	ErrValueProvided    = errors.New("kv: value is provided")
	ErrLeaseProvided    = errors.New("kv: lease is provided")
	ErrTooManyOps       = errors.New("kv: too many operations in txn request")
	ErrDuplicateKey     = errors.New("kv: duplicate key given in txn request")
	ErrCompacted        = errors.New("kv: required revision has been compacted")
	ErrFutureRev        = errors.New("kv: required revision is a future revision")
	ErrLeaseNotFound    = errors.New("kv: requested lease not found")
	ErrLeaseExists      = errors.New("kv: lease already exists")
	ErrLeaseTTLTooLarge = errors.New("kv: too large lease ttl")
	ErrInvalidLeaseID   = errors.New("kv: lease id must not be 0")
	// ErrTxnWrites is returned by ReadTxn for a txn that may write.
	ErrTxnWrites = errors.New("kv: txn is not read-only")
	// ErrBadCommand wraps every decoding error: the log entry is not a
	// command this version of kv understands.
	ErrBadCommand = errors.New("kv: bad command")
)

// Failures: the caller broke a contract, and continuing could make replicas
// diverge.
var (
	// ErrIndexNotIncreasing is returned by Apply for an index at or below
	// the last applied one (a replay the runtime should not make).
	ErrIndexNotIncreasing = errors.New("kv: apply index not above last applied index")
	// ErrCorruptSnapshot wraps every reason Restore rejects an image.
	ErrCorruptSnapshot = errors.New("kv: corrupt snapshot")
)
