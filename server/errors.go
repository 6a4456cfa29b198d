package server

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/replica"
)

// Errors etcd has no value for. The codes are the ones etcd clients treat
// the same way as etcd's nearest error (InvalidArgument: not retried).
var (
	errGRPCKeyTooLarge   = status.Error(codes.InvalidArgument, "etcdserver: key is too large")
	errGRPCBadRequest    = status.Error(codes.InvalidArgument, "etcdserver: malformed request")
	errGRPCLeaseTooLarge = rpctypes.ErrGRPCLeaseTTLTooLarge
)

// kvErrors maps kv's deterministic rejections to etcd's gRPC errors.
var kvErrors = []struct {
	kv   error
	grpc error
}{
	{kv.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{kv.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{kv.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
	{kv.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
	{kv.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{kv.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{kv.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{kv.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{kv.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{kv.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
	{kv.ErrLeaseTTLTooLarge, errGRPCLeaseTooLarge},
	{kv.ErrInvalidLeaseID, errGRPCBadRequest},
	{kv.ErrBadCommand, errGRPCBadRequest},
	{errBadEntry, errGRPCBadRequest},
}

// toGRPC turns any error of a request into the status error an etcd client
// expects. timedOut reports that the server's own request deadline (not the
// client's) ended the wait.
func toGRPC(ctx context.Context, err error, timedOut bool) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range kvErrors {
		if errors.Is(err, e.kv) {
			return e.grpc
		}
	}
	switch {
	case errors.Is(err, replica.ErrNoLeader):
		return rpctypes.ErrGRPCNoLeader
	case errors.Is(err, replica.ErrCommandTooLarge):
		return rpctypes.ErrGRPCRequestTooLarge
	case errors.Is(err, replica.ErrStopped):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, replica.ErrOutcomeUnknown):
		return rpctypes.ErrGRPCTimeoutDueToLeaderFail
	case errors.Is(err, replica.ErrProposalDropped):
		return rpctypes.ErrGRPCLeaderChanged
	case errors.Is(err, replica.ErrReadTimeout):
		return rpctypes.ErrGRPCTimeout
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if timedOut || ctx.Err() == nil {
			return rpctypes.ErrGRPCTimeout
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return rpctypes.ErrGRPCCanceled
		}
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return status.Error(codes.Unknown, err.Error())
}
