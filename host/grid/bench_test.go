//go:build unix

package grid_test

import (
	"bytes"
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// cpuTime is the CPU time the process used so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGrid uploads and downloads 64 MiB through an in-process grid of
// 5 servers (3-of-5, H=4, 1 MiB segments) and reports MB/s of plaintext.
// Each iteration is one upload and one download.
func BenchmarkGrid(b *testing.B) {
	const size = 64 << 20
	for _, bc := range []struct {
		name    string
		conv    []byte
		inPlace bool // the source is an io.ReaderAt (read in place), not a bare reader (spooled)
	}{
		{"random key streamed", nil, false},
		{"convergent spooled", []byte("bench"), false},
		{"convergent in place", []byte("bench"), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := testgrid.New(b, 5, &testgrid.Options{Limit: 4 << 30})
			c, _ := newClient(b, g, func(cfg *grid.Config) {
				cfg.SegmentSize = chk.DefaultSegmentSize
				cfg.Convergence = bc.conv
			})
			ctx := context.Background()
			var up, down, upCPU, downCPU float64
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				data := pseudo(uint64(i)+uint64(len(bc.name)), size)
				t0, c0 := time.Now(), cpuTime()
				var src io.Reader = readerOnly{bytes.NewReader(data)}
				if bc.inPlace {
					src = bytes.NewReader(data)
				}
				cp, err := c.Upload(ctx, src, size, nil)
				if err != nil {
					b.Fatal(err)
				}
				t1, c1 := time.Now(), cpuTime()
				f, err := c.Open(ctx, cp)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := f.WriteTo(io.Discard); err != nil || n != size {
					b.Fatalf("download: %d bytes, %v", n, err)
				}
				t2, c2 := time.Now(), cpuTime()
				up += t1.Sub(t0).Seconds()
				down += t2.Sub(t1).Seconds()
				upCPU += (c1 - c0).Seconds()
				downCPU += (c2 - c1).Seconds()
			}
			b.ReportMetric(float64(b.N)*size/1e6/up, "upload-MB/s")
			b.ReportMetric(float64(b.N)*size/1e6/down, "download-MB/s")
			// CPU per byte of the whole process (client and servers) is
			// steadier than MB/s on a shared machine.
			b.ReportMetric(upCPU*1e9/(float64(b.N)*size), "upload-cpu-ns/B")
			b.ReportMetric(downCPU*1e9/(float64(b.N)*size), "download-cpu-ns/B")
		})
	}
}
