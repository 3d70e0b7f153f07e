package webdav

import (
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// genReader yields n pseudo-random bytes without holding them.
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

// peakHeap samples the heap in use until stop is called.
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

// TestPutGetMemory: a 128 MiB PUT streams to the grid and a GET streams
// back; the heap of the whole process (client, WebDAV server, grid
// client, storage servers on disk) stays far below the file's size.
func TestPutGetMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("moves 128 MiB; heap figures mean nothing under the race detector")
	}
	const size = 128 << 20
	e := newEnv(t, envOpts{disk: true})
	gen := func() *genReader { return &genReader{block: pseudo(1 << 20), n: size} }
	want := sha256.New()
	io.Copy(want, gen())

	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := peakHeap()
	req, _ := http.NewRequest("PUT", e.url+"big.bin", gen())
	req.ContentLength = size
	req.SetBasicAuth("alice", alicePW)
	start := time.Now()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	up := time.Since(start)
	upPeak := stop()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", res.Status)
	}

	runtime.GC()
	stop = peakHeap()
	req, _ = http.NewRequest("GET", e.url+"big.bin", nil)
	req.SetBasicAuth("alice", alicePW)
	start = time.Now()
	res, err = e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, res.Body)
	res.Body.Close()
	down := time.Since(start)
	downPeak := stop()
	if err != nil || n != size || string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatalf("GET: %d bytes (%v), equal %v", n, err, string(got.Sum(nil)) == string(want.Sum(nil)))
	}
	const limit = 64 << 20
	t.Logf("128 MiB over WebDAV: PUT %s (heap peak +%d MiB over %d MiB), GET %s (peak +%d MiB)",
		up.Round(time.Millisecond), (upPeak-base)>>20, base>>20, down.Round(time.Millisecond), (downPeak-base)>>20)
	if upPeak > base+limit || downPeak > base+limit {
		t.Fatalf("heap grew by more than %d MiB", limit>>20)
	}
}
