// Package storage is the storage-backend plugin contract: where a storage
// server keeps share bytes. It holds the Go interface, the gRPC protocol
// tarn.storage.v1, Serve for a plugin's main and the host-side client.
//
// A backend knows nothing of share formats. It keeps two kinds of objects,
// both addressed by (storage index, share number):
//
//   - immutable shares: created with a fixed size, written at offsets, then
//     sealed; only a sealed share is ever visible to List, Stat or ReadAt,
//     and a sealed share never changes until deleted;
//   - mutable slots: whole values replaced by test-and-set (WriteSlot with
//     the token of the value the writer last read).
package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ProtocolVersion is the major version of the storage contract.
const ProtocolVersion = 1

// Sentinel errors; the RPC layer carries them across processes intact, so
// callers branch on them with errors.Is whatever the backend's process.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrExists   = errors.New("storage: already exists")
	ErrNoSpace  = errors.New("storage: not enough space")
	ErrConflict = errors.New("storage: slot changed since it was read")
	ErrRange    = errors.New("storage: offset or length out of range")
	ErrClosed   = errors.New("storage: writer already sealed or aborted")
	// ErrPluginGone: the plugin process that handed a writer its file has
	// ended (or detached); errors with it wrap ErrClosed too.
	ErrPluginGone = errors.New("storage: the plugin process went away")
)

// StorageIndexSize is the length of a storage index in bytes.
const StorageIndexSize = 16

// Ref names one share or slot.
type Ref struct {
	Index [StorageIndexSize]byte
	Num   uint32
}

func (r Ref) String() string { return fmt.Sprintf("%x/%d", r.Index[:], r.Num) }

// Info describes a backend implementation.
type Info struct {
	Name    string
	Version string
}

// Space is what the backend has and may still use, in bytes.
type Space struct {
	Total int64
	Free  int64
}

// Writer writes one immutable share that is not yet visible.
type Writer interface {
	// WriteAt writes p at off; off+len(p) must not pass the size given to
	// Create (ErrRange).
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Seal makes the share durable and visible, atomically: after a crash it
	// is either wholly there or not there at all.
	Seal(ctx context.Context) error
	// Abort discards the share.
	Abort(ctx context.Context) error
}

// Backend is implemented by every storage plugin. It must be safe for
// concurrent use.
type Backend interface {
	Info(ctx context.Context) (Info, error)
	Space(ctx context.Context) (Space, error)

	// Create starts a share of exactly size bytes. ErrExists if a sealed
	// share with that Ref exists; ErrNoSpace if it cannot fit.
	Create(ctx context.Context, ref Ref, size int64) (Writer, error)
	// Stat returns the size of a sealed share (ErrNotFound otherwise).
	Stat(ctx context.Context, ref Ref) (int64, error)
	// ReadAt reads len(p) bytes at off of a sealed share; it returns the
	// count read and io.EOF when the share ends before p is full.
	ReadAt(ctx context.Context, ref Ref, p []byte, off int64) (int, error)
	// List returns the share numbers of sealed shares of a storage index,
	// sorted; an unknown index gives an empty list, not an error.
	List(ctx context.Context, index [StorageIndexSize]byte) ([]uint32, error)
	// Delete removes a sealed share (ErrNotFound if absent).
	Delete(ctx context.Context, ref Ref) error

	// ReadSlot returns a slot's value and its token (ErrNotFound if none).
	ReadSlot(ctx context.Context, ref Ref) (value []byte, token string, err error)
	// WriteSlot replaces the slot's value if its current token is expect
	// ("" means the slot must not exist yet); otherwise ErrConflict. It
	// returns the new token. Durable and atomic like Seal.
	WriteSlot(ctx context.Context, ref Ref, expect string, value []byte) (token string, err error)
	// ListSlots returns the numbers of the slots that exist at a storage
	// index, sorted; an unknown index gives an empty list, not an error.
	// Mutable-file clients list before they read, so that they read only
	// slots that exist (docs/formats.md, "Where shares live").
	ListSlots(ctx context.Context, index [StorageIndexSize]byte) ([]uint32, error)
}

// Indexer is an optional extra: a backend that can enumerate its storage
// indexes (used by crawlers for leases and garbage collection).
type Indexer interface {
	Indexes(ctx context.Context, fn func(index [StorageIndexSize]byte) error) error
}

// Putter is an optional extra: a backend that stores a whole share in one
// call, as Create, one WriteAt of all of data and Seal would. When Put
// returns nil the share is durable and visible. ErrExists if a sealed
// share with that Ref exists; ErrNoSpace if it cannot fit. A backend that
// cannot (a plugin client talking to an older plugin) returns an error
// wrapping errors.ErrUnsupported, and the caller uses Create instead.
// Small shares are the reason: one call instead of three saves two plugin
// round trips per share.
type Putter interface {
	Put(ctx context.Context, ref Ref, data []byte) error
}

// Put stores data as the sealed share ref: with one Put call when b is a
// Putter that supports it, else with Create, WriteAt and Seal.
func Put(ctx context.Context, b Backend, ref Ref, data []byte) error {
	if p, ok := b.(Putter); ok {
		err := p.Put(ctx, ref, data)
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	return putByWriter(ctx, b, ref, data)
}

// putByWriter is Put for a backend without Putter.
func putByWriter(ctx context.Context, b Backend, ref Ref, data []byte) error {
	w, err := b.Create(ctx, ref, int64(len(data)))
	if err != nil {
		return err
	}
	if len(data) > 0 {
		if err := w.WriteAt(ctx, data, 0); err != nil {
			w.Abort(context.WithoutCancel(ctx))
			return err
		}
	}
	return w.Seal(ctx)
}

// FileWriter is an optional extra of a Writer whose bytes go, at their
// share offsets, to one open regular file already sized to the share
// (holes read as zeros, so writes never grow it). A plugin process hands
// that file to a host that asks (docs/plugins-storage.md, "Handed
// files"): the host then pwrites the share's bytes itself, with no copy
// into shared memory and no RPC per chunk, and still calls Seal or Abort
// on the Writer, which must make durable whatever was written through
// the file (an fsync of it does).
type FileWriter interface {
	Writer
	// File returns a new descriptor of the share's file (a dup), which
	// the caller closes. An error means "not this time": the host writes
	// through WriteAt instead.
	File() (*os.File, error)
}

// Opener is an optional extra of a Backend: Open returns a sealed share's
// file, opened read-only, and its size; the caller reads it with ReadAt
// and closes it. ErrNotFound if there is no sealed share. A sealed share
// never changes, so the file's bytes are the share's (a Delete meanwhile
// leaves an open file readable). A backend that cannot (a plugin client
// without handed files) returns an error wrapping errors.ErrUnsupported;
// the caller then uses Stat and ReadAt.
type Opener interface {
	Open(ctx context.Context, ref Ref) (*os.File, int64, error)
}
