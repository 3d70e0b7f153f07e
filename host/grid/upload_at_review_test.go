package grid_test

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// swapAt reads as a until it has given the last bytes once (the key's
// pass is through); from then on it reads as b: a file rewritten in
// place between the two passes in a way its fstat does not show (a write
// through a shared mapping of a page already dirty moves neither mtime
// nor ctime; see host/api's TestReviewFdMmapWriteUnseenByFstat).
type swapAt struct {
	mu      sync.Mutex
	a, b    []byte
	swapped bool
}

func (s *swapAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	src := s.a
	if s.swapped {
		src = s.b
	}
	if off+int64(len(p)) >= int64(len(src)) {
		s.swapped = true
	}
	s.mu.Unlock()
	if off >= int64(len(src)) {
		return 0, io.EOF
	}
	n := copy(p, src[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestReviewUploadAtSourceChangedBetweenPasses: a source whose bytes differ
// between the key's pass and the encode must not get a cap. Before the
// fix UploadAt returned a cap whose convergent key was hashed over a
// while its shares held b encrypted under it: not the cap of its bytes
// (no deduplication), and one AES-CTR key (zero IV) over two plaintexts
// once a is uploaded too (same storage index: the XOR of the two
// ciphertexts is the XOR of the plaintexts), with a's good shares found
// there advised as corrupt. Now the encode pass hashes what it encodes
// and fails with grid.ErrChanged before any share is sealed.
func TestReviewUploadAtSourceChangedBetweenPasses(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	for i, tc := range []struct {
		name  string
		size  int
		where int // the byte that differs
	}{
		{"first byte", 3<<20 + 5, 0},
		{"last byte", 3<<20 + 5, 3<<20 + 4},
		{"middle of a segment", 8 << 20, 5<<20 + 77},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, g, nil)
			a := pseudo(uint64(1000+i), tc.size)
			b := bytes.Clone(a)
			b[tc.where] ^= 0x5a
			ctx := ctxFor(t, time.Minute)
			got, err := c.UploadAt(grid.WithSourceCheck(ctx), &swapAt{a: a, b: b}, int64(tc.size), nil)
			if err == nil {
				wantB, berr := c.Upload(ctx, bytes.NewReader(b), int64(len(b)), nil)
				// a's own upload now finds b's shares at its storage
				// index: advised as corrupt, its servers dropped.
				_, aerr := c.Upload(ctx, readerOnly{bytes.NewReader(a)}, int64(len(a)), nil)
				t.Fatalf("UploadAt of a source that changed between passes gave cap %s; the cap of the bytes it stored is %s (%v); a plain upload of the first bytes then: %v",
					got, wantB, berr, aerr)
			}
			if !errors.Is(err, grid.ErrChanged) {
				t.Fatalf("err = %v, want grid.ErrChanged", err)
			}
			// Nothing was left at a's storage index: a uploads and reads back.
			ca, err := c.Upload(ctx, readerOnly{bytes.NewReader(a)}, int64(len(a)), nil)
			if err != nil {
				t.Fatalf("upload the first bytes after the refused upload: %v", err)
			}
			download(t, c, ca, a)
			// The unchanged bytes still upload, with their own cap.
			cp, err := c.UploadAt(grid.WithSourceCheck(ctx), bytes.NewReader(b), int64(len(b)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := upload(t, c, b); cp.String() != want.String() {
				t.Fatalf("cap %s, want %s", shortOf(cp), shortOf(want))
			}
			download(t, c, cp, b)
		})
	}
}

func shortOf(c cap.Cap) string {
	if c == nil {
		return "<nil>"
	}
	s := c.String()
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
