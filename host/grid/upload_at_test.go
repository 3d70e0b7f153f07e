package grid_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// readerOnly hides every method of a reader but Read: Upload then takes
// the spool path.
type readerOnly struct{ io.Reader }

// spoolFiles lists the files in dir (the client's TempDir).
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestUploadAtSameCap: a file read in place (UploadAt, or Upload of an
// io.ReaderAt and io.Seeker of known size) gets the same convergent cap as
// the same bytes read once through a plain reader (the spool path), reads
// back right, and an *os.File given to Upload is left past the bytes
// uploaded, as reading it would.
func TestUploadAtSameCap(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"literal", 40},
		{"small, one call", 5000},
		{"just above the small-file limit", 1<<20 + 1},
		{"many segments, ragged end", 40*seg + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.TempDir = dir })
			data := pseudo(uint64(tc.size)+1, tc.size)
			ctx := ctxFor(t, time.Minute)
			want, err := c.Upload(ctx, readerOnly{bytes.NewReader(data)}, int64(len(data)), nil)
			if err != nil {
				t.Fatalf("upload through a reader: %v", err)
			}
			at, err := c.UploadAt(ctx, bytes.NewReader(data), int64(len(data)), nil)
			if err != nil {
				t.Fatalf("UploadAt: %v", err)
			}
			// An *os.File standing at offset 3 of a file that holds more
			// before it: Upload starts where the file stands.
			path := filepath.Join(t.TempDir(), "src")
			if err := os.WriteFile(path, append([]byte("abc"), data...), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(3, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			fromFile, err := c.Upload(ctx, f, int64(len(data)), nil)
			if err != nil {
				t.Fatalf("upload of an *os.File: %v", err)
			}
			for name, got := range map[string]cap.Cap{"UploadAt": at, "Upload of a file": fromFile} {
				if got.String() != want.String() {
					t.Errorf("%s gave cap %s, the reader's upload %s", name, got, want)
				}
			}
			if pos, _ := f.Seek(0, io.SeekCurrent); pos != int64(3+len(data)) {
				t.Errorf("file left at offset %d, want %d", pos, 3+len(data))
			}
			if len(data) > 0 {
				download(t, c, at, data)
			}
			if left := spoolFiles(t, dir); len(left) != 0 {
				t.Errorf("files left in TempDir: %v", left)
			}
		})
	}
}

// TestUploadAtNoSpool: a big convergent upload read in place makes no
// spool file: TempDir stays empty while the file is encoded, where the
// reader path has its spool there.
func TestUploadAtNoSpool(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	data := pseudo(7, 20*seg)
	for _, tc := range []struct {
		name   string
		spools bool
		up     func(c *grid.Client, progress func(int64)) (cap.Cap, error)
	}{
		{"reader (spooled)", true, func(c *grid.Client, p func(int64)) (cap.Cap, error) {
			return c.Upload(ctxFor(t, time.Minute), readerOnly{bytes.NewReader(data)}, int64(len(data)), p)
		}},
		{"UploadAt", false, func(c *grid.Client, p func(int64)) (cap.Cap, error) {
			return c.UploadAt(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), p)
		}},
		{"Upload of a section reader", false, func(c *grid.Client, p func(int64)) (cap.Cap, error) {
			return c.Upload(ctxFor(t, time.Minute), io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), int64(len(data)), p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.TempDir = dir })
			most := 0
			cp, err := tc.up(c, func(int64) { most = max(most, len(spoolFiles(t, dir))) })
			if err != nil {
				t.Fatal(err)
			}
			if spooled := most > 0; spooled != tc.spools {
				t.Fatalf("%d files in TempDir during the upload; spool expected: %v", most, tc.spools)
			}
			if left := spoolFiles(t, dir); len(left) != 0 {
				t.Fatalf("files left in TempDir: %v", left)
			}
			download(t, c, cp, data)
		})
	}
}

// flakyAt is an io.ReaderAt over data that fails at failAt on its
// failOn-th pass over the data (a read at offset 0 starts a pass).
type flakyAt struct {
	data   []byte
	failAt int64
	failOn int
	pass   int
}

var errFlaky = errors.New("disk on fire")

func (f *flakyAt) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 {
		f.pass++
	}
	if f.pass == f.failOn && off+int64(len(p)) > f.failAt {
		n := max(0, int(f.failAt-off))
		copy(p, f.data[off:off+int64(n)])
		return n, errFlaky
	}
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestUploadAtBadSource: a source that fails part way (in the key's pass
// or in the encode), or holds fewer or more bytes than declared, fails the
// upload with an error that says so, seals nothing and leaves no file in
// TempDir.
func TestUploadAtBadSource(t *testing.T) {
	data := pseudo(3, 20*seg)
	size := int64(len(data))
	for _, tc := range []struct {
		name     string
		src      io.ReaderAt
		size     int64
		wantIs   error
		wantText string
	}{
		{"fails in the key's pass", &flakyAt{data: data, failAt: 3*seg + 5, failOn: 1}, size, errFlaky, fmt.Sprintf("read source at offset %d", 3*seg+5)},
		{"fails in the encode", &flakyAt{data: data, failAt: 6 * seg, failOn: 2}, size, errFlaky, fmt.Sprintf("read source at offset %d", 6*seg)},
		{"shorter than declared", bytes.NewReader(data), size + 1, grid.ErrSize, fmt.Sprintf("got %d bytes, declared %d", size, size+1)},
		{"longer than declared", bytes.NewReader(data), size - 1, grid.ErrSize, fmt.Sprintf("more than the declared %d bytes", size-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			dir := t.TempDir()
			c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.TempDir = dir })
			_, err := c.UploadAt(ctxFor(t, time.Minute), tc.src, tc.size, nil)
			if err == nil {
				t.Fatal("upload from a bad source succeeded")
			}
			if !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %q: want one wrapping %v and saying %q", err, tc.wantIs, tc.wantText)
			}
			c.Close()
			if n := g.Counts().Seals; n != 0 {
				t.Fatalf("%d shares sealed", n)
			}
			if left := spoolFiles(t, dir); len(left) != 0 {
				t.Fatalf("files left in TempDir: %v", left)
			}
			if st := c.Stats(); st.UploadsFailed != 1 {
				t.Fatalf("failed uploads counted: %d, want 1", st.UploadsFailed)
			}
		})
	}
}

// TestUploadAtRandomKey: without a convergence secret UploadAt stores the
// file under a random key (two uploads, two caps) and it reads back.
func TestUploadAtRandomKey(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.Convergence = nil })
	data := pseudo(9, 20*seg+3)
	a, err := c.UploadAt(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.UploadAt(ctxFor(t, time.Minute), bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() == b.String() {
		t.Fatal("two random-key uploads gave the same cap")
	}
	download(t, c, a, data)
}
