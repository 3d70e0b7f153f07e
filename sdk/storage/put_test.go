package storage_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// oldPutter is a backend whose Put is there but unsupported (as a plugin
// client talking to an old plugin is).
type oldPutter struct {
	storage.Backend
	calls int
}

func (o *oldPutter) Put(context.Context, storage.Ref, []byte) error {
	o.calls++
	return errors.ErrUnsupported
}

// plain hides the memory backend's own Put.
type plain struct{ storage.Backend }

// TestPutFallback: storage.Put uses a backend's Put when it works, and
// Create, WriteAt and Seal when the backend has none or it is unsupported;
// every way the share reads back whole and a second put is ErrExists.
func TestPutFallback(t *testing.T) {
	ctx := context.Background()
	old := &oldPutter{Backend: storagememory.New()}
	for _, tc := range []struct {
		name string
		b    storage.Backend
	}{
		{"putter", storagememory.New()},
		{"no putter", plain{storagememory.New()}},
		{"unsupported putter", old},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := storage.Ref{Index: [16]byte{1}, Num: 2}
			data := bytes.Repeat([]byte("x"), 3000)
			if err := storage.Put(ctx, tc.b, ref, data); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if n, err := tc.b.ReadAt(ctx, ref, got, 0); n != len(data) || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v", n, err)
			}
			if err := storage.Put(ctx, tc.b, ref, data); !errors.Is(err, storage.ErrExists) {
				t.Fatalf("second put: %v, want ErrExists", err)
			}
		})
	}
	if old.calls != 2 {
		t.Fatalf("the unsupported Put was called %d times, want 2", old.calls)
	}
}
