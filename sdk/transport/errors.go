package transport

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/protoadapt"

	"github.com/tarnfs/tarn/sdk/internal/rpcerr"
	"github.com/tarnfs/tarn/sdk/transport/transportpb"
)

// ErrPluginGone is returned by a host-side call when the plugin process
// cannot be reached (it died or its connection was cut).
var ErrPluginGone = errors.New("transport plugin unreachable")

// wire carries the transport contract's sentinel errors over gRPC; an
// unreachable plugin (Unavailable) comes back as ErrPluginGone.
var wire = &rpcerr.Table{
	Sentinels: []rpcerr.Sentinel{
		{Err: ErrBadAddress, Code: codes.InvalidArgument, Name: "bad_address"},
	},
	Detail: func(name string) protoadapt.MessageV1 { return &transportpb.ErrorDetail{Sentinel: name} },
	Name: func(d any) (string, bool) {
		ed, ok := d.(*transportpb.ErrorDetail)
		return ed.GetSentinel(), ok
	},
	Codes: map[codes.Code]func(string) error{
		codes.Unavailable: func(msg string) error {
			return &rpcerr.Remote{Msg: ErrPluginGone.Error() + ": " + msg, Err: ErrPluginGone}
		},
	},
}

// toStatus turns a transport's error into a status error that keeps the
// message and names the sentinel it wraps.
func toStatus(err error) error { return wire.ToStatus(err) }

// fromStatus rebuilds the sentinel of a status error made by toStatus.
func fromStatus(err error) error { return wire.FromStatus(err) }
