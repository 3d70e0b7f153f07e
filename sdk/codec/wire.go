package codec

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/codec/codecpb"
)

// toStatus turns a codec error into a gRPC status that carries its sentinel
// kind, so that fromStatus can rebuild it on the host.
func toStatus(err error, job int) error {
	if err == nil {
		return nil
	}
	kind, code := codecpb.Error_KIND_UNSPECIFIED, codes.Unknown
	switch {
	case errors.Is(err, ErrTooFewBlocks):
		kind, code = codecpb.Error_KIND_TOO_FEW_BLOCKS, codes.FailedPrecondition
	case errors.Is(err, ErrInvalidInput):
		kind, code = codecpb.Error_KIND_INVALID_INPUT, codes.InvalidArgument
	case errors.Is(err, ErrUnsupported):
		kind, code = codecpb.Error_KIND_UNSUPPORTED, codes.Unimplemented
	}
	st := status.New(code, err.Error())
	if job < 0 {
		job = 0
	}
	if d, derr := st.WithDetails(&codecpb.Error{Kind: kind, Job: uint32(job)}); derr == nil {
		st = d
	}
	return st.Err()
}

// remoteError is an error that came back from a plugin process: its text as
// the plugin wrote it, unwrapping to the sentinel it named.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// fromStatus rebuilds the error of a failed call. what names the call.
func fromStatus(what string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("codec plugin %s: %w", what, err)
	}
	for _, d := range st.Details() {
		e, ok := d.(*codecpb.Error)
		if !ok {
			continue
		}
		var sentinel error
		switch e.Kind {
		case codecpb.Error_KIND_TOO_FEW_BLOCKS:
			sentinel = ErrTooFewBlocks
		case codecpb.Error_KIND_INVALID_INPUT:
			sentinel = ErrInvalidInput
		case codecpb.Error_KIND_UNSUPPORTED:
			sentinel = ErrUnsupported
		}
		return &remoteError{msg: st.Message(), sentinel: sentinel}
	}
	// A transport failure (the plugin died, the context ended) keeps its
	// gRPC status so callers can still inspect it.
	return fmt.Errorf("codec plugin %s: %w", what, err)
}

// spanInts converts a wire span to ints, refusing values that do not fit.
func spanInts(s *codecpb.Span) (off, n int, err error) {
	if s == nil {
		return 0, 0, fmt.Errorf("%w: missing span", ErrInvalidInput)
	}
	if s.Offset > math.MaxInt32*uint64(1<<16) || s.Length > math.MaxInt32*uint64(1<<16) {
		return 0, 0, fmt.Errorf("%w: span [%d,+%d) out of range", ErrInvalidInput, s.Offset, s.Length)
	}
	return int(s.Offset), int(s.Length), nil
}

func wireParams(p Params) *codecpb.Params {
	return &codecpb.Params{K: uint32(p.K), N: uint32(p.N)}
}

// paramsFromWire converts and validates parameters from a request.
func paramsFromWire(w *codecpb.Params) (Params, error) {
	if w == nil {
		return Params{}, fmt.Errorf("%w: missing parameters", ErrInvalidInput)
	}
	if w.K > MaxShares || w.N > MaxShares {
		return Params{}, fmt.Errorf("%w: parameters K=%d N=%d: need 1 <= K <= N <= %d", ErrInvalidInput, w.K, w.N, MaxShares)
	}
	p := Params{K: int(w.K), N: int(w.N)}
	if err := p.Validate(); err != nil {
		return Params{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return p, nil
}

// FromStatus turns the error of a raw tarn.codec.v1 call into the error the
// Client would return: the sentinel errors survive (errors.Is works). Only
// code that drives codecpb directly needs it.
func FromStatus(call string, err error) error { return fromStatus(call, err) }
