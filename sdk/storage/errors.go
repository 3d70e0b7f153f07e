package storage

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// sentinels maps each sentinel error to its gRPC code and the name carried
// in the status detail. The detail decides on the way back; the code alone
// is a fallback for a plugin that sends none.
var sentinels = []struct {
	err  error
	code codes.Code
	name string
}{
	{ErrNotFound, codes.NotFound, "not_found"},
	{ErrExists, codes.AlreadyExists, "exists"},
	{ErrNoSpace, codes.ResourceExhausted, "no_space"},
	{ErrConflict, codes.Aborted, "conflict"},
	{ErrRange, codes.OutOfRange, "range"},
	{ErrClosed, codes.FailedPrecondition, "closed"},
}

// toStatus turns a backend's error into a gRPC status error that keeps the
// message and names the sentinel it wraps, if any.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			st := status.New(s.code, err.Error())
			if d, derr := st.WithDetails(&storagepb.ErrorDetail{Sentinel: s.name}); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// remoteError is an error that came back over RPC: its text is the
// plugin's, and it unwraps to the sentinel it stood for.
type remoteError struct {
	msg string
	err error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.err }

// fromStatus rebuilds the sentinel of a status error made by toStatus.
// Errors that are not statuses (none expected) pass through.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*storagepb.ErrorDetail); ok {
			for _, s := range sentinels {
				if s.name == ed.Sentinel {
					return &remoteError{st.Message(), s.err}
				}
			}
		}
	}
	switch st.Code() {
	case codes.Canceled:
		return &remoteError{st.Message(), context.Canceled}
	case codes.DeadlineExceeded:
		return &remoteError{st.Message(), context.DeadlineExceeded}
	}
	for _, s := range sentinels {
		if s.code == st.Code() {
			return &remoteError{st.Message(), s.err}
		}
	}
	return &remoteError{"storage plugin: " + st.Message(), err}
}

// ambiguous reports whether an RPC error leaves it unknown whether the
// plugin is still touching an arena region (the call was cut, not
// answered). Such regions are never freed, so that a late plugin cannot
// write into memory already reused for something else.
func ambiguous(err error) bool {
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.Internal:
		return true
	}
	return false
}
