package testgrid

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/tarnfs/tarn/sdk/storage"
)

// Backend is a storage server's backend as a test sees it: the real memory
// backend, with counters of what the server did to it and ways to damage
// the shares it holds.
type Backend struct {
	storage.Backend

	creates, seals, bytesWritten atomic.Int64
	reads, bytesRead             atomic.Int64

	mu      sync.Mutex
	logging bool
	log     []Read
}

var _ storage.Backend = (*Backend)(nil)

// Read is one read the server made of a share.
type Read struct {
	Ref storage.Ref
	Off int64
	Len int
}

// Counts are totals of what a server did to its backend.
type Counts struct {
	Creates, Seals, BytesWritten int64 // shares created and sealed, bytes written into them
	Reads, BytesRead             int64 // ReadAt calls on shares and bytes they returned
}

// Counts returns the totals so far.
func (b *Backend) Counts() Counts {
	return Counts{b.creates.Load(), b.seals.Load(), b.bytesWritten.Load(), b.reads.Load(), b.bytesRead.Load()}
}

// LogReads starts (or stops) keeping every share read in a log, and clears
// the log.
func (b *Backend) LogReads(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.logging, b.log = on, nil
}

// ReadLog returns the reads logged since LogReads(true).
func (b *Backend) ReadLog() []Read {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Read(nil), b.log...)
}

// Create counts the share and its bytes.
func (b *Backend) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	w, err := b.Backend.Create(ctx, ref, size)
	if err != nil {
		return nil, err
	}
	b.creates.Add(1)
	return &countingWriter{Writer: w, b: b}, nil
}

// ReadAt counts and logs the read.
func (b *Backend) ReadAt(ctx context.Context, ref storage.Ref, p []byte, off int64) (int, error) {
	n, err := b.Backend.ReadAt(ctx, ref, p, off)
	b.reads.Add(1)
	b.bytesRead.Add(int64(n))
	b.mu.Lock()
	if b.logging {
		b.log = append(b.log, Read{ref, off, len(p)})
	}
	b.mu.Unlock()
	return n, err
}

type countingWriter struct {
	storage.Writer
	b *Backend
}

func (w *countingWriter) WriteAt(ctx context.Context, p []byte, off int64) error {
	err := w.Writer.WriteAt(ctx, p, off)
	if err == nil {
		w.b.bytesWritten.Add(int64(len(p)))
	}
	return err
}

func (w *countingWriter) Seal(ctx context.Context) error {
	err := w.Writer.Seal(ctx)
	if err == nil {
		w.b.seals.Add(1)
	}
	return err
}

// Share returns the whole of a sealed share.
func (b *Backend) Share(ref storage.Ref) ([]byte, error) {
	ctx := context.Background()
	size, err := b.Backend.Stat(ctx, ref)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := b.Backend.ReadAt(ctx, ref, buf, 0)
	if err != nil && !(err == io.EOF && int64(n) == size) {
		return nil, fmt.Errorf("read share %s: %w", ref, err)
	}
	return buf, nil
}

// Shares lists the sealed shares of a storage index.
func (b *Backend) Shares(index [storage.StorageIndexSize]byte) ([]uint32, error) {
	return b.Backend.List(context.Background(), index)
}

// Replace rewrites a sealed share with other bytes (delete, create, write,
// seal), as a disk fault or a malicious server would.
func (b *Backend) Replace(ref storage.Ref, data []byte) error {
	ctx := context.Background()
	if err := b.Backend.Delete(ctx, ref); err != nil {
		return err
	}
	w, err := b.Backend.Create(ctx, ref, int64(len(data)))
	if err != nil {
		return err
	}
	if err := w.WriteAt(ctx, data, 0); err != nil {
		w.Abort(ctx)
		return err
	}
	return w.Seal(ctx)
}

// Corrupt flips the bits of mask in the byte at off of a sealed share.
func (b *Backend) Corrupt(ref storage.Ref, off int64, mask byte) error {
	data, err := b.Share(ref)
	if err != nil {
		return err
	}
	if off < 0 || off >= int64(len(data)) {
		return fmt.Errorf("corrupt share %s at %d: share has %d bytes", ref, off, len(data))
	}
	data[off] ^= mask
	return b.Replace(ref, data)
}

// DeleteShare removes a sealed share.
func (b *Backend) DeleteShare(ref storage.Ref) error {
	return b.Backend.Delete(context.Background(), ref)
}
