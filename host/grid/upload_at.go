package grid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
)

// Uploads from a source that can be read twice. A convergent key needs
// the whole plaintext before the first segment is encrypted, so a plain
// io.Reader is copied into a spool file while it is hashed and encoded
// from there. A source that is already a file (an SFTP frontend's spool,
// a local file) need not be copied: it is read once for the key and
// again for the encode, in place. That saves writing every byte to the
// page cache a second time (and the disk space of the copy).

// hashChunk is how much of the source the key's pass reads at a time.
const hashChunk = 1 << 20

// UploadAt stores the size bytes of r, read in place from offset 0 (no
// spool file), as an immutable file and returns its cap: the same cap
// Upload gives for the same bytes. With a convergence secret r is read
// twice, once for the key and once to encode; a later round (shares
// replanned after a server failed) reads it again. r must hold exactly
// size bytes (fewer or more: ErrSize) and must not change until
// UploadAt returns; under WithSourceCheck a change between the passes
// fails it with ErrChanged. progress is as for Upload.
func (c *Client) UploadAt(ctx context.Context, r io.ReaderAt, size int64, progress func(int64)) (cap.Cap, error) {
	c.stats.uploads.Add(1)
	cp, err := c.uploadAt(ctx, r, 0, size, progress)
	if err != nil {
		c.stats.uploadsFailed.Add(1)
		c.stats.errorOf(errorKind(err))
		return nil, c.Explain(err)
	}
	return cp, nil
}

// inPlace reports whether Upload can read r in place: a source of known
// size larger than a small file's that can be read at any offset and
// tells where it stands (an *os.File, an io.SectionReader, a
// bytes.Reader). It returns r's current offset, where the upload starts.
func inPlace(r io.Reader, size int64) (io.ReaderAt, int64, bool) {
	if size <= smallUploadMax {
		return nil, 0, false // read into memory anyway
	}
	ra, ok := r.(io.ReaderAt)
	if !ok {
		return nil, 0, false
	}
	sk, ok := r.(io.Seeker)
	if !ok {
		return nil, 0, false
	}
	base, err := sk.Seek(0, io.SeekCurrent)
	if err != nil || base < 0 {
		return nil, 0, false
	}
	return ra, base, true
}

// uploadAt uploads the size bytes of r from base.
func (c *Client) uploadAt(ctx context.Context, r io.ReaderAt, base, size int64, progress func(int64)) (cap.Cap, error) {
	if size < 0 || size > cap.MaxFileSize {
		return nil, fmt.Errorf("upload: bad size %d", size)
	}
	open := func() io.Reader { return &sourceReader{r: r, base: base, size: size} }
	if size <= smallUploadMax {
		// Literal and small files are read into memory: the reader path.
		return c.upload(ctx, open(), size, progress)
	}
	var key cap.Key
	first := open()
	if c.cfg.Convergence != nil {
		k, err := c.hashAt(ctx, open())
		if err != nil {
			return nil, err
		}
		key = k
		if checkSource(ctx) {
			// The encode hashes what it reads: a source that changed since
			// the key's pass (a write the caller's checks missed, such as
			// one through a shared mapping, which moves no mtime) must not
			// get a key hashed over other bytes than its shares hold.
			conv, err := chk.NewConvergence(c.cfg.Convergence, c.params, c.codec)
			if err != nil {
				return nil, fmt.Errorf("upload: %w", err)
			}
			first = &verifyReader{r: first, conv: conv, key: key, size: size}
		}
	} else {
		k, err := chk.RandomKey()
		if err != nil {
			return nil, err
		}
		key = k
	}
	if progress != nil {
		first = &progressReader{r: first, fn: progress}
	}
	return c.uploadCHK(ctx, key, size, first, func() (io.Reader, error) { return open(), nil })
}

// hashAt is the key's pass: the convergent key of what src gives. A
// goroutine reads the next chunk while this one hashes the last, so the
// pass takes about as long as the hash alone (the copy out of the page
// cache runs beside it, on another core when there is one).
func (c *Client) hashAt(ctx context.Context, src io.Reader) (cap.Key, error) {
	conv, err := chk.NewConvergence(c.cfg.Convergence, c.params, c.codec)
	if err != nil {
		return cap.Key{}, fmt.Errorf("upload: %w", err)
	}
	type chunk struct {
		b   *[]byte
		n   int
		err error
	}
	free := make(chan *[]byte, 2)
	full := make(chan chunk, 2)
	bufs := []*[]byte{getBuf(hashChunk), getBuf(hashChunk)}
	for _, b := range bufs {
		free <- b
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var b *[]byte
			select {
			case <-stop:
				return
			case b = <-free:
			}
			select {
			case <-stop: // both were ready: stop wins
				return
			default:
			}
			n, err := src.Read((*b)[:hashChunk])
			full <- chunk{b, n, err} // room for both buffers: never blocks
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait() // the reader is done with the buffers
		for _, b := range bufs {
			bufPool.Put(b)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return cap.Key{}, fmt.Errorf("upload: %w", err)
		}
		ch := <-full
		conv.Write((*ch.b)[:ch.n])
		free <- ch.b
		if ch.err == io.EOF {
			return conv.Key(), nil
		}
		if errors.Is(ch.err, ErrSize) {
			return cap.Key{}, ch.err
		}
		if ch.err != nil {
			return cap.Key{}, fmt.Errorf("upload: convergent key: %w", ch.err)
		}
	}
}

// sourceReader reads exactly size bytes of r from base, in order: fewer
// or more fail with ErrSize, and a read error names the offset.
type sourceReader struct {
	r               io.ReaderAt
	base, off, size int64
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if s.off >= s.size {
		var one [1]byte
		if n, _ := s.r.ReadAt(one[:], s.base+s.size); n > 0 {
			return 0, fmt.Errorf("upload: more than the declared %d bytes: %w", s.size, ErrSize)
		}
		return 0, io.EOF
	}
	if rest := s.size - s.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.r.ReadAt(p, s.base+s.off)
	s.off += int64(n)
	switch {
	case n == len(p):
		return n, nil // a full read may come with io.EOF at the end
	case err == nil || errors.Is(err, io.EOF):
		return n, fmt.Errorf("upload: got %d bytes, declared %d: %w", s.off, s.size, ErrSize)
	default:
		return n, fmt.Errorf("read source at offset %d: %w", s.off, err)
	}
}

type checkSourceKey struct{}

// WithSourceCheck marks ctx's in-place uploads (UploadAt, and Upload of
// an io.ReaderAt+Seeker) as reading a source that someone else may write
// while it is read: the user's file handed to the node (tarn put FILE).
// The encode pass then hashes what it reads again and fails with
// ErrChanged unless it gives the key's pass's key (~1 ns of CPU per
// byte). Without it, the caller's promise that the source does not
// change is trusted: a node's own spool file, which nothing else writes.
func WithSourceCheck(ctx context.Context) context.Context {
	return context.WithValue(ctx, checkSourceKey{}, true)
}

func checkSource(ctx context.Context) bool {
	v, _ := ctx.Value(checkSourceKey{}).(bool)
	return v
}

// ErrChanged: a source read in place gave the encode other bytes than
// the key's pass hashed (it changed between the two reads). No share of
// the upload is sealed and no cap is returned.
var ErrChanged = errors.New("source changed while it was uploaded")

// verifyReader hashes the encode pass's bytes as they are read and, once
// it has given all size of them, fails with ErrChanged unless they give
// the key the key's pass computed. The error reaches the encoder before
// it closes: no share of the upload is sealed. (A later round rereads
// the source too; there a changed source gives another cap, which
// uploadCHK refuses.)
type verifyReader struct {
	r       io.Reader
	conv    *chk.Convergence
	key     cap.Key
	size    int64
	checked bool
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.conv.Write(p[:n])
	if !v.checked && v.conv.Size() == v.size {
		v.checked = true
		if v.conv.Key() != v.key {
			return n, fmt.Errorf("upload: %w: the bytes encoded do not give the key hashed over the first read", ErrChanged)
		}
	}
	return n, err
}
