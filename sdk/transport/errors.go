package transport

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/transport/transportpb"
)

// ErrPluginGone is returned by a host-side call when the plugin process
// cannot be reached (it died or its connection was cut).
var ErrPluginGone = errors.New("transport plugin unreachable")

// sentinels maps each sentinel error to its gRPC code and its name in the
// status detail.
var sentinels = []struct {
	err  error
	code codes.Code
	name string
}{
	{ErrBadAddress, codes.InvalidArgument, "bad_address"},
}

// toStatus turns a transport's error into a status error that keeps the
// message and names the sentinel it wraps.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			st := status.New(s.code, err.Error())
			if d, derr := st.WithDetails(&transportpb.ErrorDetail{Sentinel: s.name}); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
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
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*transportpb.ErrorDetail); ok {
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
	case codes.Unavailable:
		return &remoteError{ErrPluginGone.Error() + ": " + st.Message(), ErrPluginGone}
	}
	for _, s := range sentinels {
		if s.code == st.Code() {
			return &remoteError{st.Message(), s.err}
		}
	}
	return &remoteError{st.Message(), err}
}
