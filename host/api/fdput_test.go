//go:build linux

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// fdGridFiles is the node's adapter of a grid client to the API (host/node
// files), here for tests on a real in-process grid.
type fdGridFiles struct {
	c *grid.Client
	// sawReaderAt records whether the last upload's reader could be read
	// in place (the descriptor path) rather than only streamed (a body).
	sawReaderAt bool
	// during, when set, runs once the upload has read its first bytes.
	during func()
	// mu guards during and sawReaderAt, which the test's goroutine and
	// the node's share: the socket between them is no synchronization
	// the race detector sees. Upload holds it while it runs, so what a
	// hook did is seen by the test once PutFile returned.
	mu sync.Mutex
}

func (f *fdGridFiles) setDuring(fn func()) {
	f.mu.Lock()
	f.during = fn
	f.mu.Unlock()
}

func (f *fdGridFiles) readerAt() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sawReaderAt
}

func (f *fdGridFiles) Upload(ctx context.Context, r io.Reader, size int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, f.sawReaderAt = r.(io.ReaderAt)
	if f.during != nil && f.sawReaderAt {
		r = &hookReader{r: r, fn: f.during}
	}
	c, err := f.c.Upload(ctx, r, size, nil)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

func (f *fdGridFiles) Open(ctx context.Context, c cap.Cap) (api.File, error) {
	return f.c.Open(ctx, c)
}

// hookReader calls fn once, after the first read; it keeps io.ReaderAt
// and io.Seeker when r has them, so the grid still reads in place.
type hookReader struct {
	r    io.Reader
	fn   func()
	done bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.hook()
	return n, err
}

func (h *hookReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := h.r.(io.ReaderAt).ReadAt(p, off)
	h.hook()
	return n, err
}

func (h *hookReader) Seek(off int64, whence int) (int64, error) {
	return h.r.(io.Seeker).Seek(off, whence)
}

func (h *hookReader) hook() {
	if !h.done {
		h.done = true
		h.fn()
	}
}

// newGridServer is an API over a real 5-server grid (3-of-5, convergent).
func newGridServer(t *testing.T) (*api.Server, *fdGridFiles, *api.Client) {
	t.Helper()
	g := testgrid.New(t, 5, nil)
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		Convergence: []byte("api fd test convergence"), TempDir: t.TempDir(),
		ServerTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	files := &fdGridFiles{c: c}
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "sekrit", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, files, &api.Client{BaseURL: s.URL(), Token: "sekrit"}
}

func writeFile(t *testing.T, dir, name string, b []byte) *os.File {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// TestPutFileByDescriptor: a file handed to the node by descriptor gets
// the cap the body path (spooled) gives for the same bytes, and reads
// back equal, for a literal, a small file, one of several segments and
// an empty one.
func TestPutFileByDescriptor(t *testing.T) {
	_, files, cl := newGridServer(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"literal", 40},
		{"small", 300 << 10},
		{"segments", 3<<20 + 12345},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := randomBytes(tc.size, byte(tc.size))
			f := writeFile(t, dir, tc.name, b)
			var progressed int64
			byFd, err := cl.PutFile(ctx, f, func(n int64) { progressed = n })
			if err != nil {
				t.Fatal(err)
			}
			if !files.readerAt() {
				t.Fatal("the node got a body, not the file")
			}
			if tc.size > 0 && progressed < int64(tc.size) {
				t.Errorf("progress ended at %d of %d bytes", progressed, tc.size)
			}
			// The same bytes as a body of unknown size (spooled by the
			// grid) and of known size.
			piped, err := cl.Put(ctx, io.MultiReader(bytes.NewReader(b)), -1)
			if err != nil {
				t.Fatal(err)
			}
			if files.readerAt() {
				t.Fatal("a body reached the grid as a ReaderAt")
			}
			sized, err := cl.Put(ctx, bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if byFd != piped || byFd != sized {
				t.Fatalf("caps differ:\n by descriptor %s\n spooled       %s\n sized body    %s", byFd, piped, sized)
			}
			body, size, err := cl.Get(ctx, byFd)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(b)) || !bytes.Equal(got, b) {
				t.Fatalf("read back %d bytes (size %d), not the %d put", len(got), size, len(b))
			}
		})
	}
}

// TestPutFileChanged: a file written to while the node reads it fails
// with ErrChanged (no cap), whether the write keeps its size or grows it.
func TestPutFileChanged(t *testing.T) {
	_, files, cl := newGridServer(t)
	t.Cleanup(func() { files.setDuring(nil) })
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		write func(p string) error
	}{
		{"overwrite", func(p string) error {
			w, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer w.Close()
			_, err = w.WriteAt([]byte("changed"), 1<<20)
			return err
		}},
		{"append", func(p string) error {
			w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer w.Close()
			_, err = w.Write([]byte("more"))
			return err
		}},
		{"truncate", func(p string) error { return os.Truncate(p, 2<<20) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := randomBytes(3<<20, 7)
			f := writeFile(t, dir, tc.name, b)
			var werr error
			files.setDuring(func() {
				time.Sleep(20 * time.Millisecond) // another mtime tick on coarse clocks
				werr = tc.write(f.Name())
			})
			c, err := cl.PutFile(context.Background(), f, nil)
			files.setDuring(nil)
			if werr != nil {
				t.Fatal(werr)
			}
			if err == nil {
				t.Fatalf("changed file stored as %s", c)
			}
			if !errors.Is(err, api.ErrChanged) {
				t.Fatalf("error %v: want ErrChanged", err)
			}
			t.Log(err)
		})
	}
}

// sendFd sends a raw fd-put request and returns the node's last answer.
func sendFd(t *testing.T, s *api.Server, msg string, files ...*os.File) map[string]any {
	t.Helper()
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: "@" + api.FdSocketName(s.URL()), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var fds []int
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix([]byte(msg), oob, nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		var a map[string]any
		if err := json.Unmarshal(buf[:n], &a); err != nil {
			t.Fatal(err)
		}
		if a["done"] == true {
			return a
		}
	}
}

// TestFdRefused: what the node refuses on its descriptor socket, each
// with a one-line error and its status.
func TestFdRefused(t *testing.T) {
	s, _, _ := newServer(t)
	dir := t.TempDir()
	reg := writeFile(t, dir, "reg", []byte("hello"))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	wo, err := os.OpenFile(filepath.Join(dir, "wo"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wo.Close() })
	const hdr = "tarn-fd-put 1\n"
	for _, tc := range []struct {
		name   string
		msg    string
		files  []*os.File
		status float64
		want   string
	}{
		{"pipe", hdr + "sekrit\n", []*os.File{pr}, 400, "not a regular file"},
		{"directory", hdr + "sekrit\n", []*os.File{d}, 400, "not a regular file"},
		{"write only", hdr + "sekrit\n", []*os.File{wo}, 400, "writing only"},
		{"no descriptor", hdr + "sekrit\n", nil, 400, "0 descriptors"},
		{"two descriptors", hdr + "sekrit\n", []*os.File{reg, reg}, 400, "2 descriptors"},
		{"wrong token", hdr + "nope\n", []*os.File{reg}, 401, "token"},
		{"other protocol", "GET / HTTP/1.1\r\n\r\n", []*os.File{reg}, 400, "not a tarn fd-put request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := sendFd(t, s, tc.msg, tc.files...)
			msg, _ := a["error"].(string)
			if a["status"] != tc.status || !strings.Contains(msg, tc.want) {
				t.Fatalf("answer %v: want status %v and %q", a, tc.status, tc.want)
			}
			if a["cap"] != nil {
				t.Fatalf("answer has a cap: %v", a)
			}
		})
	}
	// The node still serves after all that.
	a := sendFd(t, s, hdr+"sekrit\n", reg)
	if a["cap"] == nil {
		t.Fatalf("a good request after the refused ones: %v", a)
	}
}

// TestPutFileFallsBackToBody: without the node's socket (an API behind
// another listener, as here, or an older node) PutFile sends the file as
// a body and gets the same cap; so does a non-regular file refused
// before anything is sent.
func TestPutFileFallsBackToBody(t *testing.T) {
	s, files, cl := newServer(t)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	b := randomBytes(100<<10, 3)
	f := writeFile(t, t.TempDir(), "f", b)
	byFd, err := cl.PutFile(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	other := &api.Client{BaseURL: ts.URL, Token: "sekrit"}
	byBody, err := other.PutFile(context.Background(), f, func(n int64) { sent = n })
	if err != nil {
		t.Fatal(err)
	}
	if byFd != byBody {
		t.Fatalf("caps differ: %s by descriptor, %s as a body", byFd, byBody)
	}
	if sent != int64(len(b)) {
		t.Fatalf("body progress %d, want %d", sent, len(b))
	}
	if got := files.files[byBody]; !bytes.Equal(got, b) {
		t.Fatal("stored bytes differ")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if _, err := cl.PutFile(context.Background(), pr, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("PutFile of a pipe: %v", err)
	}
}

// TestPutFileStatus: an upload by descriptor shows in the node's
// counters and recent operations like a body's.
func TestPutFileStatus(t *testing.T) {
	s, _, cl := newServer(t)
	b := randomBytes(5000, 4)
	f := writeFile(t, t.TempDir(), "f", b)
	if _, err := cl.PutFile(context.Background(), f, nil); err != nil {
		t.Fatal(err)
	}
	st := s.Status(context.Background())
	if st.Counters.Uploads != 1 || st.Counters.BytesIn != int64(len(b)) {
		t.Fatalf("counters %+v: want 1 upload of %d bytes", st.Counters, len(b))
	}
	if len(st.Recent) != 1 || st.Recent[0].Op != "upload" || st.Recent[0].Status != http.StatusCreated || st.Recent[0].Bytes != int64(len(b)) {
		t.Fatalf("recent %+v", st.Recent)
	}
}
