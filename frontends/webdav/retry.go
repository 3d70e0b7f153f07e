package webdav

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// drive is a vdrive.Drive whose lookups (Stat, ReadDir, Open, and the
// lookups Create makes before it starts) are tried again after a failure
// that is none of vdrive's answers: a storage server that times out or a
// link that drops mid-request. Desktop clients turn a failed PROPFIND into
// a "folder vanished" dialog, so a short retry is worth its delay. Lookups
// change nothing, so trying again is safe; changes are not retried here
// (vdrive's test-and-set already runs them again on conflict).
type drive struct{ *vdrive.Drive }

// lookupTries and lookupPause pace the retries of a lookup.
const lookupTries = 3

var lookupPause = 50 * time.Millisecond

// transient reports whether err may pass when tried again.
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	for _, known := range []error{fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrInvalid,
		vdrive.ErrIsDir, vdrive.ErrNotDir, vdrive.ErrNotEmpty, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, known) {
			return false
		}
	}
	return true
}

func retry[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	pause := lookupPause
	for i := 1; ; i++ {
		v, err := fn()
		if i == lookupTries || !transient(ctx, err) {
			return v, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		pause *= 3
	}
}

func (d *drive) Stat(ctx context.Context, p string) (*vdrive.Info, error) {
	return retry(ctx, func() (*vdrive.Info, error) { return d.Drive.Stat(ctx, p) })
}

func (d *drive) ReadDir(ctx context.Context, p string) ([]*vdrive.Info, error) {
	return retry(ctx, func() ([]*vdrive.Info, error) { return d.Drive.ReadDir(ctx, p) })
}

func (d *drive) Open(ctx context.Context, p string) (vdrive.File, error) {
	return retry(ctx, func() (vdrive.File, error) { return d.Drive.Open(ctx, p) })
}

func (d *drive) Create(ctx context.Context, p string) (*vdrive.Writer, error) {
	return retry(ctx, func() (*vdrive.Writer, error) { return d.Drive.Create(ctx, p) })
}

func (d *drive) StatCached(ctx context.Context, p string) (*vdrive.Info, error) {
	return retry(ctx, func() (*vdrive.Info, error) { return d.Drive.StatCached(ctx, p) })
}

func (d *drive) OpenInfo(ctx context.Context, in *vdrive.Info) (vdrive.File, error) {
	return retry(ctx, func() (vdrive.File, error) { return d.Drive.OpenInfo(ctx, in) })
}
