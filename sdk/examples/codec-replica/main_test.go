package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/codec/codectest"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

func TestConformanceInProcess(t *testing.T) {
	codectest.Run(t, func(*testing.T) codec.Codec { return Replica{} })
}

func TestRefusesKOtherThanOne(t *testing.T) {
	p := codec.Params{K: 2, N: 3}
	blocks := [][]byte{{0}, {0}, {0}}
	err := Replica{}.Encode(context.Background(), p, []byte{1, 2}, blocks)
	if !errors.Is(err, codec.ErrUnsupported) || !strings.Contains(err.Error(), "K must be 1") {
		t.Fatalf("encode with K=2: got %v, want ErrUnsupported saying K must be 1", err)
	}
}

func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// TestOnlySDKImports keeps the example honest: a third-party plugin can
// reach only the public sdk/ packages of tarn.
func TestOnlySDKImports(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/tarnfs/tarn/") && !strings.HasPrefix(pkg, "github.com/tarnfs/tarn/sdk/") {
			t.Errorf("the example depends on %s, outside sdk/", pkg)
		}
	}
}

// buildPlugin builds this example into a temporary folder, as its author
// would, and returns the binary's path and SHA-256.
func buildPlugin(t *testing.T) (string, []byte) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "codec-replica")
	cmd := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return bin, sum[:]
}

// TestBuiltPluginPinned loads the built binary by path with its SHA-256
// pinned, on both data paths, runs the conformance suite through it, and
// shows a wrong pin is refused before the binary runs.
func TestBuiltPluginPinned(t *testing.T) {
	bin, sum := buildPlugin(t)
	start := func(t *testing.T, pin []byte, fast bool) (*pluginkit.Process, error) {
		p, err := pluginkit.Start(codec.StartOptions(pluginkit.StartOptions{
			Name:     "replica",
			Cmd:      exec.Command(bin),
			SHA256:   pin,
			FastPath: fast,
		}))
		if err == nil {
			t.Cleanup(p.Kill)
		}
		return p, err
	}
	for _, tc := range []struct {
		name string
		fast bool
	}{{"shared-memory", true}, {"streaming", false}} {
		t.Run(tc.name, func(t *testing.T) {
			proc, err := start(t, sum, tc.fast)
			if err != nil {
				t.Fatalf("start pinned plugin: %v", err)
			}
			c, err := codec.ClientOf(proc)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if fast, err := c.FastPath(ctx); err != nil || fast != tc.fast {
				t.Fatalf("fast path = %v (%v), want %v", fast, err, tc.fast)
			}
			in, err := c.Info(ctx)
			if err != nil || in.Name != "replica" {
				t.Fatalf("info = %+v, %v", in, err)
			}
			// A round trip through the built binary, then the whole suite.
			seg := []byte("replicated by a third-party plugin")
			p := codec.Params{K: 1, N: 4}
			blocks := make([][]byte, p.N)
			for i := range blocks {
				blocks[i] = make([]byte, len(seg))
			}
			if err := c.Encode(ctx, p, seg, blocks); err != nil {
				t.Fatalf("encode: %v", err)
			}
			out := make([]byte, len(seg))
			if err := c.Decode(ctx, p, [][]byte{nil, nil, blocks[2], nil}, out); err != nil || !bytes.Equal(out, seg) {
				t.Fatalf("decode = %q, %v", out, err)
			}
			k2 := codec.Params{K: 2, N: 4}
			half := make([][]byte, k2.N)
			for i := range half {
				half[i] = make([]byte, codec.BlockSize(k2, len(seg)))
			}
			err = c.Encode(ctx, k2, seg, half)
			if !errors.Is(err, codec.ErrUnsupported) {
				t.Fatalf("encode with K=2 across the process boundary: got %v, want ErrUnsupported", err)
			}
			codectest.Run(t, func(*testing.T) codec.Codec { return c })
		})
	}
	t.Run("wrong-sha256", func(t *testing.T) {
		bad := bytes.Clone(sum)
		bad[0] ^= 0xff
		_, err := start(t, bad, true)
		if !errors.Is(err, pluginkit.ErrPinMismatch) {
			t.Fatalf("start with a wrong pin: got %v, want ErrPinMismatch", err)
		}
		t.Logf("refused: %v", err)
	})
}
