package vdrive

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// TestBehindForgetsFlushedFolders: a folder whose links an operation
// made before its delayed flush fired is forgotten once that flush finds
// nothing to do, so a long-running node keeps no state per folder it
// ever wrote to.
func TestBehindForgetsFlushedFolders(t *testing.T) {
	g := testgrid.New(t, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
		cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
	}})
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
		Convergence: []byte("vdrive test convergence"),
		TempDir:     t.TempDir(), ServerTimeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := NewRoot(ctx, GridStore(c))
	if err != nil {
		t.Fatal(err)
	}
	const delay = 50 * time.Millisecond
	b, err := OpenBehind(GridStore(c), BehindConfig{Dir: t.TempDir(), Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d, err := New(b, root.String(), WithWriteBehind())
	if err != nil {
		t.Fatal(err)
	}
	for i, dir := range []string{"/a", "/b", "/c"} {
		if err := d.Mkdir(ctx, dir); err != nil {
			t.Fatal(err)
		}
		if err := d.Put(ctx, dir+"/f", bytes.NewReader([]byte{byte(i)}), 1, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadDir(ctx, dir); err != nil { // makes the link now
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.dirs)
		b.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d folders with nothing pending still kept after their flush fired", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.Pending() != 0 {
		t.Fatalf("%d links pending", b.Pending())
	}
}
