package grid_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// seg is the segment size of test clients: small, so that multi-segment
// files stay quick.
const seg = 64 << 10

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newClient makes a 3-of-5, H=4 client of g with small segments and a
// short server timeout; mod adjusts the config. The returned buffer holds
// the client's log.
func newClient(t testing.TB, g *testgrid.Grid, mod func(*grid.Config)) (*grid.Client, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := grid.Config{
		Transport:     g.Transport,
		Cert:          g.ClientCert(),
		GridSecret:    g.Secret,
		Codec:         codecreedsolomon.New(),
		Servers:       g.Source(),
		K:             3,
		H:             4,
		N:             5,
		SegmentSize:   seg,
		Convergence:   []byte("test convergence secret"),
		TempDir:       t.TempDir(),
		ServerTimeout: 2 * time.Second,
		Logger:        hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := grid.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, logs
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// pseudo is reproducible data: the same seed gives the same bytes.
func pseudo(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func upload(t testing.TB, c *grid.Client, data []byte) cap.Cap {
	t.Helper()
	cp, err := c.Upload(ctxFor(t, 60*time.Second), bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatalf("upload of %d bytes: %v", len(data), err)
	}
	return cp
}

// download reads the whole file and checks it by SHA-256 against want.
func download(t testing.TB, c *grid.Client, cp cap.Cap, want []byte) *grid.File {
	t.Helper()
	f, err := c.Open(ctxFor(t, 60*time.Second), cp)
	if err != nil {
		t.Fatalf("open %s: %v", cp, err)
	}
	if f.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", f.Size(), len(want))
	}
	// Both ways of reading: WriteTo (read-ahead over several decoders)
	// and ReadAt through a Reader (one decoder, 32 KiB at a time).
	for _, way := range []string{"WriteTo", "Reader"} {
		h := sha256.New()
		var n int64
		var err error
		if way == "WriteTo" {
			n, err = f.WriteTo(h)
		} else {
			n, err = io.Copy(h, f.Reader())
		}
		if err != nil || n != int64(len(want)) {
			t.Fatalf("%s: read %d of %d bytes: %v", way, n, len(want), err)
		}
		if got, exp := h.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, exp[:]) {
			t.Fatalf("%s: downloaded bytes differ from the uploaded ones (sha256 %x, want %x)", way, got, exp)
		}
	}
	return f
}

func chkOf(t testing.TB, cp cap.Cap) cap.CHK {
	t.Helper()
	v, ok := cp.(cap.CHK)
	if !ok {
		t.Fatalf("cap %s is a %s cap, want chk", cp, cp.Kind())
	}
	return v
}
