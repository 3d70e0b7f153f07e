package storagememory

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// envServe makes the test binary serve the memory backend as a plugin.
const envServe = "TARN_TEST_SERVE_STORAGE_MEMORY"

func TestMain(m *testing.M) {
	if os.Getenv(envServe) == "1" {
		Serve()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func pluginCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServe+"=1")
	return cmd
}

func TestPluginConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Backend {
				c, _ := storagetest.StartPlugin(t, pluginCmd(), tc.fast, nil)
				return c
			})
		})
	}
}

// TestPluginSettingsRefused: the memory backend has no settings, so a
// host that gives it some is told so.
func TestPluginSettingsRefused(t *testing.T) {
	c, _ := storagetest.StartPlugin(t, pluginCmd(), false, nil)
	ctx := context.Background()
	if err := c.Configure(ctx, []byte(`{}`)); err != nil {
		t.Fatalf("empty settings: %v", err)
	}
	if err := c.Configure(ctx, []byte(`{"path":"/x"}`)); err == nil {
		t.Fatal("settings for a backend without any were accepted")
	}
}

// TestPluginZeroCopy writes and reads through a buffer that already lives
// in the arena, the path with no copy on the host side.
func TestPluginZeroCopy(t *testing.T) {
	c, p := storagetest.StartPlugin(t, pluginCmd(), true, nil)
	ctx := context.Background()
	rg, err := p.DataPlane.Arena.Alloc(3 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer p.DataPlane.Arena.Free(rg)
	for i := range rg.Bytes {
		rg.Bytes[i] = byte(i * 7)
	}
	want := bytes.Clone(rg.Bytes)
	r := storage.Ref{Num: 1}
	w, err := c.Create(ctx, r, int64(len(rg.Bytes)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, rg.Bytes, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	clear(rg.Bytes)
	n, err := c.ReadAt(ctx, r, rg.Bytes, 0)
	if err != nil || n != len(want) || !bytes.Equal(rg.Bytes, want) {
		t.Fatalf("zero-copy read: n=%d err=%v equal=%v", n, err, bytes.Equal(rg.Bytes, want))
	}
}

// TestPluginArenaFull: with every byte of the arena taken, reads and
// writes of ordinary buffers fall back to bytes over gRPC and still work.
func TestPluginArenaFull(t *testing.T) {
	c, p := storagetest.StartPlugin(t, pluginCmd(), true, nil)
	a := p.DataPlane.Arena
	all, err := a.Alloc(a.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free(all)
	if _, err := a.Alloc(1); err == nil {
		t.Fatal("the arena still has room")
	}
	ctx := context.Background()
	want := bytes.Repeat([]byte("tarn"), 3<<18) // 3 MiB
	r := storage.Ref{Num: 9}
	w, err := c.Create(ctx, r, int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, want, 0); err != nil {
		t.Fatalf("write with a full arena: %v", err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if n, err := c.ReadAt(ctx, r, got, 0); err != nil || n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("read with a full arena: n=%d err=%v equal=%v", n, err, bytes.Equal(got, want))
	}
}
