package grid_test

import (
	"crypto/sha256"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// genReader yields n pseudo-random bytes without holding them: a 1 MiB
// block varied by a counter, so segments differ.
type genReader struct {
	block []byte
	n, at int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.at >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.at)]
	for i := range p {
		pos := g.at + int64(i)
		p[i] = g.block[pos&(1<<20-1)] ^ byte(pos>>20)
	}
	g.at += int64(len(p))
	return len(p), nil
}

// peakHeap samples the heap in use until stop is called and returns the
// highest value seen.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestMemoryIsBounded uploads and downloads a 128 MiB file, streamed from
// a generator, through servers that keep shares on disk, and checks that
// the heap of the whole process (client and servers) stays far below the
// file's size.
func TestMemoryIsBounded(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("moves 128 MiB; heap figures mean nothing under the race detector")
	}
	const size = 128 << 20
	g := testgrid.New(t, 5, &testgrid.Options{Backend: func(int) (storage.Backend, error) {
		return storagedisk.New(t.TempDir())
	}})
	c, _ := newClient(t, g, func(cfg *grid.Config) {
		cfg.Convergence = nil
		cfg.SegmentSize = chk.DefaultSegmentSize
		cfg.ServerTimeout = 30 * time.Second
	})
	gen := func() *genReader { return &genReader{block: pseudo(7, 1<<20), n: size} }
	want := sha256.New()
	io.Copy(want, gen())

	// Collect often, so the heap in use is close to what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := peakHeap()
	ctx := ctxFor(t, 5*time.Minute)
	start := time.Now()
	cp, err := c.Upload(ctx, gen(), size, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	upPeak := stop()

	runtime.GC()
	stop = peakHeap()
	start = time.Now()
	f, err := c.Open(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	if n, err := f.WriteTo(got); err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	down := time.Since(start)
	downPeak := stop()
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("downloaded bytes differ")
	}
	const limit = 64 << 20
	t.Logf("128 MiB: upload %s (heap peak %d MiB over %d MiB before), download %s (peak %d MiB)",
		up.Round(time.Millisecond), (upPeak-base)>>20, base>>20, down.Round(time.Millisecond), (downPeak-base)>>20)
	if upPeak > base+limit || downPeak > base+limit {
		t.Fatalf("heap grew by more than %d MiB", limit>>20)
	}
}
