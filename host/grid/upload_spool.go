package grid

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
)

// Uploads whose bytes a caller keeps in a file of its own while they
// arrive (the SFTP frontend's spool). Such a caller starts the upload
// before it knows the size (the client writes, in order, for a while),
// through layers that see only an io.Reader of unknown size (host/vdrive's
// Put). The reader gives the bytes in order as they become final, so the
// convergent key is hashed while they arrive; the file the caller keeps
// them in is read again, in place, for the encode once the reader ends.
// Nothing is copied into a spool file of the grid's.

// spoolKey is the context key of a spoolHint.
type spoolKey struct{}

// spoolHint is the caller's file, claimed by the first upload that uses it.
type spoolHint struct {
	ra      io.ReaderAt
	claimed atomic.Bool
}

// WithSpool returns a context under which the first Upload of unknown size
// (size -1) reads its reader once, in order, hashing the convergent key as
// the bytes come, and then encodes from ra instead of from a spool file of
// its own. By the time the reader returns io.EOF after n bytes, ra must
// hold those n bytes at offsets 0 to n and nothing past them (else the
// upload fails with ErrSize), and it must not change until the upload
// returns. A reader error fails the upload before any server is asked to
// store anything. Later uploads under the context (of directories, say)
// are not affected.
func WithSpool(ctx context.Context, ra io.ReaderAt) context.Context {
	return context.WithValue(ctx, spoolKey{}, &spoolHint{ra: ra})
}

// claimSpool returns ctx's spool file if no upload took it yet.
func claimSpool(ctx context.Context) (io.ReaderAt, bool) {
	h, ok := ctx.Value(spoolKey{}).(*spoolHint)
	if !ok || h.claimed.Swap(true) {
		return nil, false
	}
	return h.ra, true
}

// uploadSpooled is the upload under WithSpool: a pass over r for the key
// and the size, then UploadAt's encode from ra.
func (c *Client) uploadSpooled(ctx context.Context, r io.Reader, ra io.ReaderAt, progress func(int64)) (cap.Cap, error) {
	var conv *chk.Convergence
	if c.cfg.Convergence != nil {
		var err error
		if conv, err = chk.NewConvergence(c.cfg.Convergence, c.params, c.codec); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
	}
	bp := getBuf(hashChunk)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		m, err := r.Read(buf)
		if conv != nil {
			conv.Write(buf[:m])
		}
		n += int64(m)
		if n > cap.MaxFileSize {
			return nil, fmt.Errorf("upload: more than %d bytes", cap.MaxFileSize)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("upload: read: %w", err)
		}
	}
	open := func() io.Reader { return &sourceReader{r: ra, size: n} }
	if n <= smallUploadMax {
		return c.upload(ctx, open(), n, progress) // in memory
	}
	var key cap.Key
	if conv != nil {
		key = conv.Key()
	} else {
		k, err := chk.RandomKey()
		if err != nil {
			return nil, err
		}
		key = k
	}
	first := open()
	if progress != nil {
		first = &progressReader{r: first, fn: progress}
	}
	return c.uploadCHK(ctx, key, n, first, func() (io.Reader, error) { return open(), nil })
}
