package codecreedsolomon

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/codec"
)

// benchBatch is how many segments one shared-memory call carries in the
// benchmark: enough to spread one round trip's cost thin. On this shared
// 2-core machine a round trip to the plugin costs 50-250 us depending on
// load, and a 1 MiB parity-only decode 65 us, so batches of 8 reach only
// ~70% of in-process for decode; 32 reach ~90%.
const benchBatch = 32

// benchArena holds benchBatch segments' buffers (32 x 4.4 MiB) and the
// staged case's staging region; a memfd costs only the pages touched.
const benchArena = 256 << 20

// benchSet is a batch of segments and their blocks, filled with the same
// random bytes whoever allocated them.
type benchSet struct {
	ejobs []codec.EncodeJob
	djobs []codec.DecodeJob
	bufs  []*codec.Buffers
}

func newBenchSet(b *testing.B, p codec.Params, size, batch int, shared *codec.Client) *benchSet {
	s := &benchSet{}
	for i := range batch {
		var seg []byte
		var blocks [][]byte
		if shared != nil {
			buf, err := shared.AllocBuffers(p, size)
			if err != nil {
				b.Fatal(err)
			}
			if !buf.Shared() {
				b.Fatal("benchmark buffers are not in shared memory")
			}
			s.bufs = append(s.bufs, buf)
			seg, blocks = buf.Segment, buf.Blocks
		} else {
			seg = make([]byte, size)
			blocks = make([][]byte, p.N)
			for k := range blocks {
				blocks[k] = make([]byte, codec.BlockSize(p, size))
			}
		}
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for k := range seg {
			seg[k] = byte(r.Uint32())
		}
		s.ejobs = append(s.ejobs, codec.EncodeJob{Segment: seg, Blocks: blocks})
		present := make([][]byte, p.N)
		copy(present[p.N-p.K:], blocks[p.N-p.K:]) // parity only
		s.djobs = append(s.djobs, codec.DecodeJob{Blocks: present, Out: seg})
	}
	return s
}

func (s *benchSet) release() {
	for _, b := range s.bufs {
		b.Release()
	}
}

// BenchmarkPaths measures 1 MiB segments with K=3, N=10 on one goroutine:
// in process (the ceiling); through a plugin process on the shared-memory
// path with arena buffers from AllocBuffers (zero copy), in batches of
// benchBatch segments; on the shared-memory path with heap buffers (staged:
// copied in and out of the arena); and on the streaming gRPC fallback.
// Decode rebuilds from the last K blocks (parity only), the costliest case.
//
// The machine is shared, so each plugin sub-benchmark interleaves its calls
// with in-process calls on the same data and reports both: MB/s (through
// the path), in-process-MB/s (measured alongside) and x-in-process, their
// ratio. The in-process sub-benchmark reports its MB/s alone.
func BenchmarkPaths(b *testing.B) {
	p := codec.Params{K: 3, N: 10}
	const size = 1 << 20
	ctx := context.Background()
	_, fastClient := startPluginArena(b, true, benchArena)
	_, slowClient := startPlugin(b, false)
	ref := newBenchSet(b, p, size, benchBatch, nil)
	inproc := New()
	if err := codec.EncodeBatch(ctx, inproc, p, ref.ejobs); err != nil {
		b.Fatal(err)
	}

	cases := []struct {
		name   string
		c      codec.Codec
		shared *codec.Client // when set, buffers come from its arena
		batch  int
	}{
		{name: "in-process", c: inproc, batch: benchBatch},
		{name: "shared-memory", c: fastClient, shared: fastClient, batch: benchBatch},
		{name: "shared-memory-staged", c: fastClient, batch: benchBatch},
		{name: "streaming", c: slowClient, batch: 1},
	}
	for _, cc := range cases {
		set := newBenchSet(b, p, size, cc.batch, cc.shared)
		if err := codec.EncodeBatch(ctx, cc.c, p, set.ejobs); err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B, call, refCall func(n int) error) {
			var took, refTook time.Duration
			for done := 0; done < b.N; {
				n := min(cc.batch, b.N-done)
				t0 := time.Now()
				if err := call(n); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				took += t1.Sub(t0)
				if cc.name != "in-process" {
					if err := refCall(n); err != nil {
						b.Fatal(err)
					}
					refTook += time.Since(t1)
				}
				done += n
			}
			mbps := float64(b.N) * size / took.Seconds() / 1e6
			b.ReportMetric(mbps, "MB/s")
			if refTook > 0 {
				refMBps := float64(b.N) * size / refTook.Seconds() / 1e6
				b.ReportMetric(refMBps, "in-process-MB/s")
				b.ReportMetric(mbps/refMBps, "x-in-process")
			}
		}
		b.Run(cc.name+"/encode", func(b *testing.B) {
			run(b,
				func(n int) error { return codec.EncodeBatch(ctx, cc.c, p, set.ejobs[:n]) },
				func(n int) error { return codec.EncodeBatch(ctx, inproc, p, ref.ejobs[:n]) })
		})
		b.Run(cc.name+"/decode", func(b *testing.B) {
			run(b,
				func(n int) error { return codec.DecodeBatch(ctx, cc.c, p, set.djobs[:n]) },
				func(n int) error { return codec.DecodeBatch(ctx, inproc, p, ref.djobs[:n]) })
		})
		set.release()
	}
}
