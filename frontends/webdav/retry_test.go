package webdav

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

func TestRetry(t *testing.T) {
	old := lookupPause
	lookupPause = time.Millisecond
	defer func() { lookupPause = old }()
	flaky := errors.New("servers offer an older version")
	for _, tc := range []struct {
		name      string
		errs      []error // returned by successive calls; then nil
		wantCalls int
		wantErr   error
	}{
		{"ok at once", nil, 1, nil},
		{"one transient failure", []error{flaky}, 2, nil},
		{"two transient failures", []error{flaky, flaky}, 3, nil},
		{"always failing", []error{flaky, flaky, flaky, flaky}, lookupTries, flaky},
		{"not found is an answer", []error{fmt.Errorf("stat /x: %w", fs.ErrNotExist)}, 1, fs.ErrNotExist},
		{"not a directory is an answer", []error{vdrive.ErrNotDir}, 1, vdrive.ErrNotDir},
		{"read-only is an answer", []error{vdrive.ErrReadOnly}, 1, vdrive.ErrReadOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			_, err := retry(context.Background(), func() (int, error) {
				calls++
				if calls <= len(tc.errs) {
					return 0, tc.errs[calls-1]
				}
				return 1, nil
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("%d calls, err %v; want %d calls, err %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	retry(ctx, func() (int, error) { calls++; return 0, flaky })
	if calls != 1 {
		t.Fatalf("%d calls with an ended context, want 1", calls)
	}
}
