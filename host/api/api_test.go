package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/placement"
)

// memFiles is an in-memory Files: a cap is "tarn:lit:" of the SHA-256 of
// the bytes (a stand-in key, not a real literal cap), enough to test the
// HTTP layer alone. The node's tests run the real grid behind the API.
type memFiles struct {
	mu    sync.Mutex
	files map[string][]byte
	err   error // returned by every call when set
}

type memFile struct{ *bytes.Reader }

func (f memFile) Size() int64 { return f.Reader.Size() }

func (m *memFiles) Upload(ctx context.Context, r io.Reader, size int64) (string, error) {
	if m.err != nil {
		return "", m.err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	if size >= 0 && int64(len(b)) != size {
		return "", fmt.Errorf("got %d bytes, want %d", len(b), size)
	}
	sum := sha256.Sum256(b)
	c := cap.Literal{Data: sum[:8]}.String()
	m.mu.Lock()
	m.files[c] = b
	m.mu.Unlock()
	return c, nil
}

func (m *memFiles) Open(ctx context.Context, c cap.Cap) (api.File, error) {
	if m.err != nil {
		return nil, m.err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[c.String()]
	if !ok {
		return nil, fmt.Errorf("open: %w", api.ErrNotFound)
	}
	return memFile{bytes.NewReader(b)}, nil
}

func newServer(t *testing.T) (*api.Server, *memFiles, *api.Client) {
	t.Helper()
	files := &memFiles{files: map[string][]byte{}}
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "sekrit", Files: files,
		Status: func(context.Context) api.Status {
			return api.Status{NodeID: "v1-test", Servers: []api.ServerStatus{{NodeID: "a", Connected: true}, {NodeID: "b"}}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, files, &api.Client{BaseURL: s.URL(), Token: "sekrit"}
}

func TestClientRoundTripAndCounters(t *testing.T) {
	_, _, c := newServer(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("tarn "), 10000)
	capStr, err := c.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		off, length int64
	}{
		{"whole", 0, -1},
		{"from offset", 100, -1},
		{"middle", 7, 1000},
		{"empty", 5, 0},
		{"last byte", int64(len(data)) - 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, n, err := c.GetRange(ctx, capStr, tc.off, tc.length)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			end := int64(len(data))
			if tc.length >= 0 {
				end = tc.off + tc.length
			}
			if err != nil || n != end-tc.off || !bytes.Equal(got, data[tc.off:end]) {
				t.Errorf("got %d bytes (declared %d), err %v; want bytes %d-%d", len(got), n, err, tc.off, end)
			}
		})
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "v1-test" || st.Known != 2 || st.Conn != 1 || st.Counters.Uploads != 1 ||
		st.Counters.Downloads != 4 || st.Counters.BytesIn != int64(len(data)) {
		t.Errorf("status: %+v", st)
	}
}

func TestErrorStatus(t *testing.T) {
	_, files, c := newServer(t)
	cases := []struct {
		name   string
		err    error
		status int
		is     error
	}{
		{"not happy", fmt.Errorf("upload: %w", placement.ErrNotHappy), 503, api.ErrUnavailable},
		{"not enough shares", fmt.Errorf("download: %w", chk.ErrNotEnoughShares), 503, api.ErrUnavailable},
		{"not found", api.ErrNotFound, 404, api.ErrNotFound},
		{"never stored", fmt.Errorf("download: %w: %w", grid.ErrNoShares, chk.ErrNotEnoughShares), 404, api.ErrNotFound},
		{"malformed", fmt.Errorf("x: %w", cap.ErrSyntax), 400, api.ErrBadCap},
		{"other", errors.New("disk on fire"), 500, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := api.StatusCode(tc.err); got != tc.status {
				t.Errorf("StatusCode = %d, want %d", got, tc.status)
			}
			files.err = tc.err
			defer func() { files.err = nil }()
			_, err := c.Put(context.Background(), strings.NewReader("x"), 1)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Msg, tc.err.Error()) {
				t.Fatalf("put: %v, want status %d", err, tc.status)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}
}

// FuzzHandler sends arbitrary paths, methods, tokens and Range headers:
// the API must answer every one with a status code, never panic, and
// never serve a file without the token.
func FuzzHandler(f *testing.F) {
	for _, s := range [][4]string{
		{"GET", "/v1/file/tarn:lit:aaaa", "bytes=0-1", "sekrit"},
		{"GET", "/v1/file/tarn:chk:" + strings.Repeat("a", 60), "bytes=-5", "sekrit"},
		{"HEAD", "/v1/file/%00", "", "sekrit"},
		{"PUT", "/v1/file", "", "wrong"},
		{"GET", "/v1/status", "bytes=9-1", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	files := &memFiles{files: map[string][]byte{}}
	secret := cap.Literal{Data: []byte("secret!!")}.String()
	files.files[secret] = []byte("the secret contents")
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "sekrit", Files: files})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, path, rng, token string) {
		req, err := http.NewRequest(method, "http://x"+path, strings.NewReader("body"))
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req.Header.Set("Range", rng)
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("status %d", w.Code)
		}
		if token != "sekrit" && (w.Code != 401 || strings.Contains(w.Body.String(), "secret contents")) {
			t.Fatalf("without the token: status %d, body %q", w.Code, w.Body.String())
		}
	})
}
