// Package vdrivetest helps tests set up directory trees that vdrive itself
// would no longer make, as an older version of tarn could have left them.
package vdrivetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
	"github.com/tarnfs/tarn/host/vdrive"
)

// noChunks: a small directory is all inline in its root.
type noChunks struct{}

func (noChunks) Put(context.Context, []byte) (string, error) { return "", errors.New("no chunks here") }
func (noChunks) Get(context.Context, string) ([]byte, error) {
	return nil, errors.New("no chunks here")
}

// PlantFile stores data as a file and links it at name in the small
// directory rootCap (a tarn:dir: write cap) straight through the directory
// format, past vdrive's rules for new names: a name over 255 bytes, say,
// as an older version could write (up to 1,024).
func PlantFile(ctx context.Context, st vdrive.Store, rootCap, name string, data []byte) error {
	fc, err := st.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return fmt.Errorf("plant %q: upload: %w", name, err)
	}
	return PlantEntry(ctx, st, rootCap, name, fc.String(), int64(len(data)))
}

// PlantEntry links the file fileCap of size bytes at name in rootCap, as
// PlantFile does.
func PlantEntry(ctx context.Context, st vdrive.Store, rootCap, name, fileCap string, size int64) error {
	c, err := cap.Parse(rootCap)
	if err != nil {
		return fmt.Errorf("plant %q: %w", name, err)
	}
	dw, ok := c.(cap.DirWrite)
	if !ok {
		return fmt.Errorf("plant %q: %s is not a directory write cap", name, c.Kind())
	}
	wk, rk := dw.Slot.WriteKey(), dw.Slot.ReadCap().ReadKey
	keys := dirnode.NewKeys(rk[:], wk[:])
	now := time.Now()
	return st.Modify(ctx, dw.Slot, func(old []byte) ([]byte, error) {
		return dirnode.Edit(ctx, old, keys, noChunks{}, nil, dirnode.Limits{}, func(tx *dirnode.Tx) error {
			return tx.Set(name, fileCap, "", dirnode.Metadata{Type: dirnode.TypeFile, Size: size, Ctime: now, Mtime: now})
		})
	})
}
