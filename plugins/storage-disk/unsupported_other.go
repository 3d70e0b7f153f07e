//go:build !unix

package storagedisk

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/tarnfs/tarn/sdk/storage"
)

// The disk backend is built on Unix file semantics (flock, fsync of
// folders, rename over a share, pwritev, mmap of packs). Elsewhere
// (Windows) it refuses at open, with this error, and a node that stores
// shares must run on Linux, macOS or FreeBSD; client nodes do not use it.
var errUnsupportedOS = fmt.Errorf("storage disk: not supported on %s, run storage nodes on Linux, macOS or FreeBSD: %w", runtime.GOOS, errors.ErrUnsupported)

// Settings are the plugin's settings (see the Unix build).
type Settings struct {
	Path string `json:"path"`
	Pack *bool  `json:"pack,omitempty"`
}

// Disk is never made here: New always fails.
type Disk struct{ storage.Backend }

// New fails: the disk backend does not run on this system.
func New(dir string) (*Disk, error) { return nil, errUnsupportedOS }

// Close does nothing; there is never an open Disk here.
func (d *Disk) Close() error { return nil }

// Put fails: there is never an open Disk here.
func (d *Disk) Put(context.Context, storage.Ref, []byte) error { return errUnsupportedOS }

// Serve runs a plugin process that refuses its configuration with one line
// saying that the disk backend does not run here, so the host's start of
// the plugin fails with it.
func Serve() { storage.Serve(refusing{}) }

// refusing is the served backend of Serve: every call fails.
type refusing struct{}

func (refusing) Configure(context.Context, []byte) error { return errUnsupportedOS }
func (refusing) Info(context.Context) (storage.Info, error) {
	return storage.Info{Name: "disk", Version: "1.0.0"}, nil
}
func (refusing) Space(context.Context) (storage.Space, error) {
	return storage.Space{}, errUnsupportedOS
}
func (refusing) Create(context.Context, storage.Ref, int64) (storage.Writer, error) {
	return nil, errUnsupportedOS
}
func (refusing) Stat(context.Context, storage.Ref) (int64, error) { return 0, errUnsupportedOS }
func (refusing) ReadAt(context.Context, storage.Ref, []byte, int64) (int, error) {
	return 0, errUnsupportedOS
}
func (refusing) List(context.Context, [storage.StorageIndexSize]byte) ([]uint32, error) {
	return nil, errUnsupportedOS
}
func (refusing) Delete(context.Context, storage.Ref) error { return errUnsupportedOS }
func (refusing) ReadSlot(context.Context, storage.Ref) ([]byte, string, error) {
	return nil, "", errUnsupportedOS
}
func (refusing) WriteSlot(context.Context, storage.Ref, string, []byte) (string, error) {
	return "", errUnsupportedOS
}
func (refusing) ListSlots(context.Context, [storage.StorageIndexSize]byte) ([]uint32, error) {
	return nil, errUnsupportedOS
}

var _ storage.Backend = refusing{}
