package grid_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// failAfter gives n bytes of r, then fails.
type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errFlaky
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestUploadWithSpool: an upload of unknown size under WithSpool reads its
// reader once (for the key) and encodes from the caller's file: the same
// cap as a plain upload, no file in TempDir while it runs, and only the
// first upload under the context takes the caller's file. A reader that
// fails, or a file that holds other than the bytes read, fails the upload
// and stores nothing.
func TestUploadWithSpool(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	data := pseudo(11, 30*seg+9)
	for _, tc := range []struct {
		name     string
		size     int
		reader   func(b []byte) io.Reader
		file     func(b []byte) io.ReaderAt
		wantErr  error
		wantText string
	}{
		{"multi-segment", len(data), func(b []byte) io.Reader { return readerOnly{bytes.NewReader(b)} },
			func(b []byte) io.ReaderAt { return bytes.NewReader(b) }, nil, ""},
		{"small, in memory", 70 << 10, func(b []byte) io.Reader { return readerOnly{bytes.NewReader(b)} },
			func(b []byte) io.ReaderAt { return bytes.NewReader(b) }, nil, ""},
		{"reader fails", len(data), func(b []byte) io.Reader { return &failAfter{r: bytes.NewReader(b), n: 5 * seg} },
			func(b []byte) io.ReaderAt { return bytes.NewReader(b) }, errFlaky, "upload: read"},
		{"file shorter than the bytes read", len(data), func(b []byte) io.Reader { return readerOnly{bytes.NewReader(b)} },
			func(b []byte) io.ReaderAt { return bytes.NewReader(b[:len(b)-1]) }, grid.ErrSize, "got"},
		{"file longer than the bytes read", len(data), func(b []byte) io.Reader { return readerOnly{bytes.NewReader(b)} },
			func(b []byte) io.ReaderAt { return bytes.NewReader(append(bytes.Clone(b), 'x')) }, grid.ErrSize, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.TempDir = dir })
			b := data[:tc.size]
			seals := g.Counts().Seals
			ctx := grid.WithSpool(ctxFor(t, time.Minute), tc.file(b))
			most := 0
			got, err := c.Upload(ctx, tc.reader(b), -1, func(int64) { most = max(most, len(spoolFiles(t, dir))) })
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
					t.Fatalf("error %v: want one wrapping %v and saying %q", err, tc.wantErr, tc.wantText)
				}
				c.Close()
				if n := g.Counts().Seals - seals; n != 0 {
					t.Fatalf("%d shares sealed by a failed upload", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if most != 0 {
				t.Fatalf("%d files in TempDir during the upload, want none", most)
			}
			want, err := c.Upload(context.Background(), readerOnly{bytes.NewReader(b)}, int64(len(b)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("cap %s, a plain upload gives %s", got, want)
			}
			download(t, c, got, b)
			// A second upload under the same context does not take the
			// file (it holds the first one's bytes): it spools.
			other := pseudo(12, 20*seg)
			var spooled int
			again, err := c.Upload(ctx, readerOnly{bytes.NewReader(other)}, -1, func(int64) { spooled = max(spooled, len(spoolFiles(t, dir))) })
			if err != nil {
				t.Fatal(err)
			}
			if spooled == 0 {
				t.Fatal("the second upload under the context did not spool: it took the first one's file")
			}
			download(t, c, again, other)
		})
	}
}
