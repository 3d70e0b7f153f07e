package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/tarnfs/tarn/sdk/internal/rpcerr"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

var (
	errA    = errors.New("a went wrong")
	errB    = errors.New("b went wrong")
	errGone = errors.New("plugin gone")
)

var table = &rpcerr.Table{
	Sentinels: []rpcerr.Sentinel{
		{Err: errA, Code: codes.NotFound, Name: "a"},
		// b shares a's code: only the detail tells them apart.
		{Err: errB, Code: codes.NotFound, Name: "b"},
	},
	Detail: func(name string) protoadapt.MessageV1 { return &storagepb.ErrorDetail{Sentinel: name} },
	Name: func(d any) (string, bool) {
		ed, ok := d.(*storagepb.ErrorDetail)
		return ed.GetSentinel(), ok
	},
	Codes: map[codes.Code]func(string) error{
		codes.Unavailable: func(msg string) error { return &rpcerr.Remote{Msg: "gone: " + msg, Err: errGone} },
	},
	Prefix: "plugin: ",
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   error  // the plugin's error
		want error  // what the host's error must unwrap to
		text string // what its text must hold
	}{
		{"sentinel by detail", fmt.Errorf("share 3: %w", errB), errB, "share 3: b went wrong"},
		{"canceled", fmt.Errorf("read: %w", context.Canceled), context.Canceled, "read: context canceled"},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded, "deadline"},
		{"plain error keeps its text", errors.New("disk on fire"), nil, "plugin: disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			back := table.FromStatus(table.ToStatus(tc.in))
			if tc.want != nil && !errors.Is(back, tc.want) {
				t.Errorf("%v does not unwrap to %v", back, tc.want)
			}
			if tc.want == nil && (errors.Is(back, errA) || errors.Is(back, errB)) {
				t.Errorf("%v unwraps to a sentinel it did not wrap", back)
			}
			if !strings.Contains(back.Error(), tc.text) {
				t.Errorf("text %q does not hold %q", back.Error(), tc.text)
			}
		})
	}
}

func TestFromBareStatus(t *testing.T) {
	if err := table.FromStatus(status.Error(codes.NotFound, "x")); !errors.Is(err, errA) {
		t.Errorf("a code without detail: %v, want the first sentinel of that code", err)
	}
	if err := table.FromStatus(status.Error(codes.Unavailable, "cut")); !errors.Is(err, errGone) || err.Error() != "gone: cut" {
		t.Errorf("Unavailable: %v, want the table's own mapping", err)
	}
	plain := errors.New("not a status")
	if err := table.FromStatus(plain); err != plain {
		t.Errorf("a non-status error changed: %v", err)
	}
	if table.FromStatus(nil) != nil || table.ToStatus(nil) != nil {
		t.Error("nil did not stay nil")
	}
	st := status.Error(codes.Aborted, "already a status")
	if table.ToStatus(st) != st {
		t.Error("a status error was wrapped again")
	}
}
