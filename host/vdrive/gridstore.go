package vdrive

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
)

// gridStore is the Store of a host/grid client.
type gridStore struct{ c *grid.Client }

var _ Store = gridStore{}

// GridStore is the Store over a grid client: immutable files by Upload and
// Open, directories in its mutable slots.
func GridStore(c *grid.Client) Store { return gridStore{c} }

func (g gridStore) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	return g.c.Upload(ctx, r, size, progress)
}

func (g gridStore) Open(ctx context.Context, c cap.Cap) (File, error) {
	f, err := g.c.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (g gridStore) CreateMutable(ctx context.Context, initial []byte) (cap.MutableWrite, error) {
	return g.c.CreateMutable(ctx, initial)
}

func (g gridStore) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	b, _, err := g.c.ReadMutable(ctx, c)
	return b, err
}

func (g gridStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	_, err := g.c.Modify(ctx, c, fn)
	if errors.Is(err, grid.ErrContention) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// WithSpool returns a context under which the first upload of unknown
// size reads its reader once (hashing the convergent key as the bytes
// come) and then encodes from ra, which must hold the same bytes, in
// place (grid.WithSpool). A frontend that spools a file anyway (SFTP)
// hands its spool, so the grid does not copy it into one of its own.
func WithSpool(ctx context.Context, ra io.ReaderAt) context.Context {
	return grid.WithSpool(ctx, ra)
}
