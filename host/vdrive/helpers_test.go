package vdrive_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// newGrid starts five storage servers that run the mutable-slot write
// check, as every storage node does.
func newGrid(t testing.TB) *testgrid.Grid { return newGridN(t, 5) }

// newGridN starts n such servers.
func newGridN(t testing.TB, n int) *testgrid.Grid {
	return testgrid.New(t, n, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
}

// newClient is a 3-of-5, H=4 grid client of g with its own identity (a
// separate client node).
func newClient(t testing.TB, g *testgrid.Grid) *grid.Client {
	t.Helper()
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		Convergence: []byte("vdrive test convergence"),
		TempDir:     t.TempDir(), ServerTimeout: 5 * time.Second,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newDrive makes a fresh root on g and opens it through a new client.
func newDrive(t testing.TB, g *testgrid.Grid, opts ...vdrive.Option) *vdrive.Drive {
	t.Helper()
	st := vdrive.GridStore(newClient(t, g))
	root, err := vdrive.NewRoot(ctxFor(t, time.Minute), st)
	if err != nil {
		t.Fatal(err)
	}
	d, err := vdrive.New(st, root.String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// open opens rootCap through its own new client.
func open(t testing.TB, g *testgrid.Grid, rootCap string, opts ...vdrive.Option) *vdrive.Drive {
	t.Helper()
	d, err := vdrive.New(vdrive.GridStore(newClient(t, g)), rootCap, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func put(t testing.TB, d *vdrive.Drive, p string, data []byte) {
	t.Helper()
	w, err := d.Create(ctxFor(t, time.Minute), p)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

func get(t testing.TB, d *vdrive.Drive, p string) []byte {
	t.Helper()
	f, err := d.Open(ctxFor(t, time.Minute), p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n != len(b) {
		t.Fatalf("read %s: %d of %d bytes: %v", p, n, len(b), err)
	}
	return b
}

func names(t testing.TB, d *vdrive.Drive, p string) []string {
	t.Helper()
	infos, err := d.ReadDir(ctxFor(t, time.Minute), p)
	if err != nil {
		t.Fatalf("readdir %s: %v", p, err)
	}
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name()
	}
	return out
}

// pseudo is reproducible data.
func pseudo(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// litCap is a literal cap holding s (at most cap.LiteralMax bytes).
func litCap(s string) string {
	if len(s) > 55 {
		s = s[:55]
	}
	return cap.Literal{Data: []byte(s)}.String()
}

// chunkStore reads directory chunks straight from a Store, as a
// read-cap holder decoding by hand would.
type chunkStore struct{ s vdrive.Store }

func (c chunkStore) Put(context.Context, []byte) (string, error) {
	return "", errors.New("read-only")
}

func (c chunkStore) Get(ctx context.Context, ref string) ([]byte, error) {
	cp, err := cap.Parse(ref)
	if err != nil {
		return nil, err
	}
	f, err := c.s.Open(ctx, cp)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
}
