package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// noOpen is a backend that can hand files in general but not this one
// (as the disk backend cannot hand a packed share without a sealed memfd,
// off Linux): its Open answers errors.ErrUnsupported.
type noOpen struct{ storage.Backend }

func (noOpen) Open(_ context.Context, ref storage.Ref) (*os.File, int64, error) {
	return nil, 0, fmt.Errorf("open share %s: %w", ref, errors.ErrUnsupported)
}

// A plugin backend's ErrUnsupported from Open reaches the host as
// ErrUnsupported (UNIMPLEMENTED on the wire), so the host falls back to
// Stat and ReadAt, which still read the share.
func TestOpenUnsupportedFallsBack(t *testing.T) {
	ctx := context.Background()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServeOld+"=noopen")
	c, _ := storagetest.StartPlugin(t, cmd, true, nil)
	ref := storage.Ref{Index: [16]byte{4}, Num: 2}
	if err := storage.Put(ctx, c, ref, []byte("packed")); err != nil {
		t.Fatal(err)
	}
	if f, _, err := c.Open(ctx, ref); !errors.Is(err, errors.ErrUnsupported) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Open of a share the plugin cannot hand: %v, want ErrUnsupported", err)
	}
	got := make([]byte, 6)
	if n, err := c.ReadAt(ctx, ref, got, 0); n != 6 || string(got) != "packed" {
		t.Fatalf("ReadAt after the refused Open: %q, %v", got[:n], err)
	}
}
