package sftp

import (
	"context"
	"strings"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// retryDrive is the vdrive with retries of transient grid refusals.
//
// host/grid refuses a directory read that races a publish of the same
// directory by another session of this node (the servers still offer the
// version before the one this node has just written: "older than a
// version already seen"). The refusal lasts as long as the publish, so
// the operation is tried again a few times before the client sees it.
// This goes once the grid waits out its own publishes.
type retryDrive struct {
	*vdrive.Drive
}

// retryRollback is the text of the grid's rollback refusal (mutable.
// ErrRollback); frontends reach the grid only through the vdrive, which
// does not name it.
const retryRollback = "older than a version already seen"

// retryDelays are the waits between attempts.
var retryDelays = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

func transient(err error) bool {
	return err != nil && strings.Contains(err.Error(), retryRollback)
}

// retry runs fn until it succeeds, fails for good, or the attempts end.
func retry(ctx context.Context, fn func() error) error {
	err := fn()
	for _, d := range retryDelays {
		if !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		err = fn()
	}
	return err
}

func (r retryDrive) Stat(ctx context.Context, p string) (*vdrive.Info, error) {
	var in *vdrive.Info
	err := retry(ctx, func() (err error) { in, err = r.Drive.Stat(ctx, p); return err })
	return in, err
}

func (r retryDrive) ReadDir(ctx context.Context, p string) ([]*vdrive.Info, error) {
	var l []*vdrive.Info
	err := retry(ctx, func() (err error) { l, err = r.Drive.ReadDir(ctx, p); return err })
	return l, err
}

func (r retryDrive) Open(ctx context.Context, p string) (vdrive.File, error) {
	var f vdrive.File
	err := retry(ctx, func() (err error) { f, err = r.Drive.Open(ctx, p); return err })
	return f, err
}

func (r retryDrive) Create(ctx context.Context, p string) (*vdrive.Writer, error) {
	var w *vdrive.Writer
	err := retry(ctx, func() (err error) { w, err = r.Drive.Create(ctx, p); return err })
	return w, err
}

func (r retryDrive) Mkdir(ctx context.Context, p string) error {
	return retry(ctx, func() error { return r.Drive.Mkdir(ctx, p) })
}

func (r retryDrive) Remove(ctx context.Context, p string) error {
	return retry(ctx, func() error { return r.Drive.Remove(ctx, p) })
}

func (r retryDrive) Rename(ctx context.Context, oldp, newp string) error {
	return retry(ctx, func() error { return r.Drive.Rename(ctx, oldp, newp) })
}

func (r retryDrive) SetMetadata(ctx context.Context, p string, fn func(*vdrive.Metadata) error) error {
	return retry(ctx, func() error { return r.Drive.SetMetadata(ctx, p, fn) })
}
