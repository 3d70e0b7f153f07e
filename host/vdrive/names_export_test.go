package vdrive

import (
	"context"

	"github.com/tarnfs/tarn/host/dirnode"
)

// SetRaw sets name in the directory at dir straight through dirnode, past
// the checks of vdrive's operations, as an older version would have
// (tests of entries with names no new operation makes).
func SetRaw(ctx context.Context, d *Drive, dir, name, readCap, writeCap string, m Metadata) error {
	parts, err := SplitPath(dir)
	if err != nil {
		return err
	}
	ref, err := d.walk(ctx, parts)
	if err != nil {
		return err
	}
	return d.edit(ctx, ref, func(tx *dirnode.Tx) error { return tx.Set(name, readCap, writeCap, m) })
}
