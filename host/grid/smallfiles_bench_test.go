package grid_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// BenchmarkSmallFiles uploads and downloads 4 KiB files (convergent keys,
// as a node does by default) through an in-process grid of 5 servers
// (3-of-5, 1 MiB segments), one op being one upload and one download.
// With -benchmem (or -memprofile) it shows what a small file allocates;
// the servers run in the same process, so read a memory profile by
// function to tell the client's share.
//
//	go test -run '^$' -bench SmallFiles -benchmem -memprofile mem.out ./host/grid
func BenchmarkSmallFiles(b *testing.B) {
	g := testgrid.New(b, 5, &testgrid.Options{Limit: 4 << 30})
	c, _ := newClient(b, g, func(cfg *grid.Config) { cfg.SegmentSize = chk.DefaultSegmentSize })
	ctx := context.Background()
	var out bytes.Buffer
	b.SetBytes(4096)
	for i := 0; b.Loop(); i++ {
		data := pseudo(uint64(i)+99, 4096)
		cp, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			b.Fatal(err)
		}
		f, err := c.Open(ctx, cp)
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		if _, err := f.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
			b.Fatalf("download: %v", err)
		}
	}
}
