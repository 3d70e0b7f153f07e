package storage

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/tarnfs/tarn/sdk/internal/rpcerr"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// wire carries the storage contract's sentinel errors over gRPC.
var wire = &rpcerr.Table{
	Sentinels: []rpcerr.Sentinel{
		{Err: ErrNotFound, Code: codes.NotFound, Name: "not_found"},
		{Err: ErrExists, Code: codes.AlreadyExists, Name: "exists"},
		{Err: ErrNoSpace, Code: codes.ResourceExhausted, Name: "no_space"},
		{Err: ErrConflict, Code: codes.Aborted, Name: "conflict"},
		{Err: ErrRange, Code: codes.OutOfRange, Name: "range"},
		{Err: ErrClosed, Code: codes.FailedPrecondition, Name: "closed"},
	},
	Detail: func(name string) protoadapt.MessageV1 { return &storagepb.ErrorDetail{Sentinel: name} },
	Name: func(d any) (string, bool) {
		ed, ok := d.(*storagepb.ErrorDetail)
		return ed.GetSentinel(), ok
	},
	Prefix: "storage plugin: ",
}

// toStatus turns a backend's error into a gRPC status error that keeps the
// message and names the sentinel it wraps, if any.
func toStatus(err error) error { return wire.ToStatus(err) }

// fromStatus rebuilds the sentinel of a status error made by toStatus.
func fromStatus(err error) error { return wire.FromStatus(err) }

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
