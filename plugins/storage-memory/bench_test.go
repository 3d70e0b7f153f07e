package storagememory

import (
	"context"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

const benchChunk = 1 << 20

// baseline holds the in-process MB/s of each operation, measured by the
// first sub-benchmark, so that the plugin paths report their ratio to it.
var baseline = map[string]float64{}

type benchPath struct {
	name    string
	backend func(b *testing.B) (storage.Backend, []byte)
}

// benchPaths gives the backend and the caller's 1 MiB buffer of each path:
// in process; through the arena with a buffer already in it (zero copy);
// through the arena with an ordinary buffer (one copy); bytes over gRPC.
func benchPaths() []benchPath {
	return []benchPath{
		{"inprocess", func(b *testing.B) (storage.Backend, []byte) {
			return New(), make([]byte, benchChunk)
		}},
		{"fast-zerocopy", func(b *testing.B) (storage.Backend, []byte) {
			c, p := storagetest.StartPlugin(b, pluginCmd(), true, nil)
			rg, err := p.DataPlane.Arena.Alloc(benchChunk)
			if err != nil {
				b.Fatal(err)
			}
			return c, rg.Bytes
		}},
		{"fast-copy", func(b *testing.B) (storage.Backend, []byte) {
			c, _ := storagetest.StartPlugin(b, pluginCmd(), true, nil)
			return c, make([]byte, benchChunk)
		}},
		{"fallback", func(b *testing.B) (storage.Backend, []byte) {
			c, _ := storagetest.StartPlugin(b, pluginCmd(), false, nil)
			return c, make([]byte, benchChunk)
		}},
	}
}

func report(b *testing.B, op, path string) {
	mbs := float64(b.N) * benchChunk / 1e6 / b.Elapsed().Seconds()
	if path == "inprocess" {
		baseline[op] = mbs
		return
	}
	if base := baseline[op]; base > 0 {
		b.ReportMetric(mbs/base, "x-inprocess")
	}
}

// BenchmarkWriteSeal creates, writes and seals one 1 MiB share per op.
func BenchmarkWriteSeal(b *testing.B) {
	for _, bp := range benchPaths() {
		b.Run(bp.name, func(b *testing.B) {
			be, buf := bp.backend(b)
			ctx := context.Background()
			b.SetBytes(benchChunk)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r := storage.Ref{Num: uint32(i)}
				w, err := be.Create(ctx, r, benchChunk)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.WriteAt(ctx, buf, 0); err != nil {
					b.Fatal(err)
				}
				if err := w.Seal(ctx); err != nil {
					b.Fatal(err)
				}
				if err := be.Delete(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			report(b, "write", bp.name)
		})
	}
}

// BenchmarkReadAt reads one 1 MiB share whole per op.
func BenchmarkReadAt(b *testing.B) {
	for _, bp := range benchPaths() {
		b.Run(bp.name, func(b *testing.B) {
			be, buf := bp.backend(b)
			ctx := context.Background()
			r := storage.Ref{Num: 1}
			w, err := be.Create(ctx, r, benchChunk)
			if err == nil {
				err = w.WriteAt(ctx, buf, 0)
			}
			if err == nil {
				err = w.Seal(ctx)
			}
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchChunk)
			b.ResetTimer()
			for b.Loop() {
				if n, err := be.ReadAt(ctx, r, buf, 0); err != nil || n != benchChunk {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
			report(b, "read", bp.name)
		})
	}
}
