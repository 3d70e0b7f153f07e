package storageserver

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/storage"
)

// codeOf maps the backend's sentinel errors to gRPC codes; the client maps
// them back (docs/protocol.md, "Errors").
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{storage.ErrNotFound, codes.NotFound},
	{storage.ErrExists, codes.AlreadyExists},
	{storage.ErrNoSpace, codes.ResourceExhausted},
	{storage.ErrConflict, codes.Aborted},
	{storage.ErrRange, codes.OutOfRange},
	{storage.ErrClosed, codes.FailedPrecondition},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// toStatus turns an error into a gRPC status error with the right code and
// the error's text.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return status.Error(c.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// watch runs fn, which calls touch whenever its stream makes progress, and
// ends the RPC with DeadlineExceeded when no progress is made for idle. The
// RPC's return cancels the stream, which unblocks fn's pending Send or Recv,
// so a peer that stops reading or writing cannot hold a handler forever.
func watch(ctx context.Context, idle time.Duration, what string, fn func(touch func()) error) error {
	done := make(chan error, 1)
	var last = make(chan struct{}, 1)
	touch := func() {
		select {
		case last <- struct{}{}:
		default:
		}
	}
	go func() { done <- fn(touch) }()
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-last:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(idle)
		case <-t.C:
			return status.Errorf(codes.DeadlineExceeded, "%s: no progress for %s, ending it", what, idle)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}
