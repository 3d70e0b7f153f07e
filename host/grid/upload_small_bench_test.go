package grid_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// BenchmarkSmallUpload uploads 4 KiB files (convergent keys, as a node
// does by default), 16 at once as `tarn cp -r` does, through an
// in-process grid of 5 servers (3-of-5): the one-call path (PutShares)
// and the servers' side of it. With -cpuprofile or -memprofile it shows
// what a small upload costs client and servers together.
//
//	go test -run '^$' -bench SmallUpload -benchmem -memprofile mem.out ./host/grid
func BenchmarkSmallUpload(b *testing.B) {
	g := testgrid.New(b, 5, &testgrid.Options{Limit: 4 << 30})
	c, _ := newClient(b, g, func(cfg *grid.Config) { cfg.SegmentSize = chk.DefaultSegmentSize })
	ctx := context.Background()
	if _, err := c.Upload(ctx, bytes.NewReader(pseudo(1, 4096)), 4096, nil); err != nil {
		b.Fatal(err) // dials every server: the one-call path needs links
	}
	b.SetBytes(4096)
	b.SetParallelism(8) // 16 goroutines on 2 CPUs
	var seq atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			data := pseudo(seq.Add(1)+1000, 4096)
			if _, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
