package storagedisk

import (
	"context"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// BenchmarkWriteSeal measures a sealed (fsynced) 1 MiB share per op on
// this machine's disk, in process and through the plugin's fast path: the
// cost of durability that the memory-backend benchmark leaves out.
func BenchmarkWriteSeal(b *testing.B) {
	for _, tc := range []struct {
		name string
		new  func(b *testing.B) storage.Backend
	}{
		{"inprocess", func(b *testing.B) storage.Backend {
			d, err := New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return d
		}},
		{"fast", func(b *testing.B) storage.Backend {
			c, _ := storagetest.StartPlugin(b, pluginCmd(), true, settings(b, b.TempDir()))
			return c
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := tc.new(b)
			ctx := context.Background()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			for i := 0; b.Loop(); i++ {
				r := storage.Ref{Num: uint32(i)}
				w, err := be.Create(ctx, r, int64(len(buf)))
				if err == nil {
					err = w.WriteAt(ctx, buf, 0)
				}
				if err == nil {
					err = w.Seal(ctx)
				}
				if err == nil {
					err = be.Delete(ctx, r)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
