package vdrive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
)

// File is an open immutable file: range reads and its size.
type File interface {
	io.ReaderAt
	Size() int64
}

// Store is what the vdrive needs of a grid: immutable files and mutable
// slots. GridStore adapts a host/grid client.
type Store interface {
	// Upload stores r (size -1: unknown) as an immutable file and returns
	// its read cap (cap.CHK or cap.Literal). A known size is exact: Upload
	// fails when r holds fewer or more bytes.
	Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error)
	// Open opens an immutable file for range reads.
	Open(ctx context.Context, c cap.Cap) (File, error)
	// CreateMutable makes a new slot holding initial.
	CreateMutable(ctx context.Context, initial []byte) (cap.MutableWrite, error)
	// ReadMutable reads a slot's current content.
	ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error)
	// Modify replaces a slot's content by fn(current), by test-and-set:
	// when another writer got in first, fn runs again on the newer
	// content, so no update is lost. fn's error ends Modify and is
	// returned (wrapped or not).
	Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error
}

// maxChunk bounds a directory chunk a reader accepts.
const maxChunk = 64 << 20

// chunks stores directory buckets as immutable files: the reference is the
// file's read cap.
type chunks struct{ s Store }

var _ dirnode.Chunks = chunks{}

func (c chunks) Put(ctx context.Context, data []byte) (string, error) {
	cp, err := c.s.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return "", err
	}
	return cp.String(), nil
}

func (c chunks) Get(ctx context.Context, ref string) ([]byte, error) {
	cp, err := cap.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("chunk reference: %w", err)
	}
	switch cp.(type) {
	case cap.CHK, cap.Literal:
	default:
		return nil, fmt.Errorf("chunk reference is a %s cap, want chk or lit: %w", cp.Kind(), dirnode.ErrFormat)
	}
	f, err := c.s.Open(ctx, cp)
	if err != nil {
		return nil, err
	}
	if f.Size() > maxChunk {
		return nil, fmt.Errorf("chunk of %d bytes, more than %d: %w", f.Size(), maxChunk, dirnode.ErrFormat)
	}
	buf := make([]byte, f.Size())
	if n, err := f.ReadAt(buf, 0); n != len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read chunk: %w", err)
	}
	return buf, nil
}
