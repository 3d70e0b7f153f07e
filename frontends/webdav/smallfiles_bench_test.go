package webdav

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
	"github.com/tarnfs/tarn/internal/proctest"
)

// countingStore counts the vdrive's calls into the grid, and the wall
// time spent in them.
type countingStore struct {
	vdrive.Store
	upload, open, readSlot, modify, create callCount
}

type callCount struct{ n, ns atomic.Int64 }

func (c *callCount) add(t time.Time) { c.n.Add(1); c.ns.Add(int64(time.Since(t))) }

func (s *countingStore) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	defer s.upload.add(time.Now())
	return s.Store.Upload(ctx, r, size, progress)
}

func (s *countingStore) Open(ctx context.Context, c cap.Cap) (vdrive.File, error) {
	defer s.open.add(time.Now())
	return s.Store.Open(ctx, c)
}

func (s *countingStore) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	defer s.readSlot.add(time.Now())
	return s.Store.ReadMutable(ctx, c)
}

func (s *countingStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	defer s.modify.add(time.Now())
	return s.Store.Modify(ctx, c, fn)
}

func (s *countingStore) CreateMutable(ctx context.Context, initial []byte) (cap.MutableWrite, error) {
	defer s.create.add(time.Now())
	return s.Store.CreateMutable(ctx, initial)
}

// costs is a snapshot of everything counted.
type costs struct {
	upload, open, readSlot, modify                 int64
	slotLists, slotReads, slotWrites, shareReads   int64
	uploads, downloads, sharesSealed, shareCreates int64
}

func (e *env) costs(s *countingStore) costs {
	st := e.client.Stats()
	gc := e.grid.Counts()
	return costs{
		upload: s.upload.n.Load(), open: s.open.n.Load(),
		readSlot: s.readSlot.n.Load(), modify: s.modify.n.Load(),
		slotLists: st.SlotLists, slotReads: st.SlotReads, slotWrites: st.SlotWrites, shareReads: gc.Reads,
		uploads: st.Uploads, downloads: st.Downloads, sharesSealed: st.SharesSealed, shareCreates: gc.Creates,
	}
}

func (c costs) minus(o costs) costs {
	return costs{c.upload - o.upload, c.open - o.open, c.readSlot - o.readSlot, c.modify - o.modify,
		c.slotLists - o.slotLists, c.slotReads - o.slotReads, c.slotWrites - o.slotWrites, c.shareReads - o.shareReads,
		c.uploads - o.uploads, c.downloads - o.downloads, c.sharesSealed - o.sharesSealed, c.shareCreates - o.shareCreates}
}

func (c costs) String() string {
	return fmt.Sprintf("store: upload %d open %d readSlot %d modify %d | grid: slot lists %d reads %d writes %d, uploads %d downloads %d, shares created %d sealed %d, share reads %d",
		c.upload, c.open, c.readSlot, c.modify, c.slotLists, c.slotReads, c.slotWrites, c.uploads, c.downloads, c.shareCreates, c.sharesSealed, c.shareReads)
}

// cpuTime is the CPU time (user and system) this process has used: the
// WebDAV server, the grid client and the storage servers together.
func cpuTime() time.Duration {
	return proctest.CPUTime()
}

// rcloneFile is what `rclone copy DIR remote:dir` sends for each file
// (traced with --dump headers, rclone 1.60, vendor other): MKCOL of the
// folder (405: it exists), PUT of the file, PROPFIND Depth 1 of the file.
func rcloneFile(t testing.TB, e *env, dir, name string, data string) {
	if r := e.alice(t, "MKCOL", dir+"/", nil, ""); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("MKCOL %s/: %d, want 405", dir, r.status)
	}
	if r := e.alice(t, "PUT", dir+"/"+name, nil, data); r.status != http.StatusCreated {
		t.Fatalf("PUT %s/%s: %d %s", dir, name, r.status, r.body)
	}
	if r := e.alice(t, "PROPFIND", dir+"/"+name, map[string]string{"Depth": "1"}, ""); r.status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND %s/%s: %d %s", dir, name, r.status, r.body)
	}
}

// BenchmarkRcloneSmallFiles replays rclone's requests for a copy of 4 KiB
// files to a new folder and back, with 1 and 4 transfers, on disk
// backends. One op is one file up and down. Beside the rates it reports
// the grid calls per file; with -v the first run logs each request's.
func BenchmarkRcloneSmallFiles(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("transfers=%d", workers), func(b *testing.B) {
			cs := &countingStore{}
			e := newEnv(b, envOpts{disk: true, wrap: func(s vdrive.Store) vdrive.Store { cs.Store = s; return cs }})
			data := string(pseudo(4096))
			e.must(b, http.StatusCreated, "MKCOL", "/up", nil, "")
			// One file request by request, to show what each costs.
			if workers == 1 {
				step := func(what string, fn func()) {
					c0 := e.costs(cs)
					fn()
					b.Logf("%-28s %s", what, e.costs(cs).minus(c0))
				}
				step("MKCOL (exists)", func() { e.alice(b, "MKCOL", "/up/", nil, "") })
				step("PUT new 4 KiB", func() { e.alice(b, "PUT", "/up/probe", nil, data) })
				step("PROPFIND Depth 1 of file", func() { e.alice(b, "PROPFIND", "/up/probe", map[string]string{"Depth": "1"}, "") })
				step("PROPFIND Depth 1 of folder", func() { e.alice(b, "PROPFIND", "/up/", map[string]string{"Depth": "1"}, "") })
				step("GET 4 KiB", func() { e.alice(b, "GET", "/up/probe", nil, "") })
				e.must(b, http.StatusNoContent, "DELETE", "/up/probe", nil, "")
			}
			c0 := e.costs(cs)
			cpu0 := cpuTime()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			t0 := time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						d := fmt.Sprintf("%06d", i) + data[6:]
						rcloneFile(b, e, "/up", fmt.Sprintf("f%06d", i), d)
					}
				}()
			}
			wg.Wait()
			up := time.Since(t0)
			cpu1 := cpuTime()
			c1 := e.costs(cs)
			r := e.must(b, http.StatusMultiStatus, "PROPFIND", "/up/", map[string]string{"Depth": "1"}, "")
			if n := len(hrefs(b, r.body)) - 1; n != b.N {
				b.Fatalf("%d files listed, want %d", n, b.N)
			}
			next.Store(0)
			t1 := time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						want := fmt.Sprintf("%06d", i) + data[6:]
						if g := e.alice(b, "GET", fmt.Sprintf("/up/f%06d", i), nil, ""); g.status != http.StatusOK || g.body != want {
							b.Errorf("GET f%06d: %d, %d bytes, equal %v", i, g.status, len(g.body), g.body == want)
							return
						}
					}
				}()
			}
			wg.Wait()
			down := time.Since(t1)
			cpu2 := cpuTime()
			b.StopTimer()
			c2 := e.costs(cs)
			n := float64(b.N)
			upc, downc := c1.minus(c0), c2.minus(c1)
			b.ReportMetric(n/up.Seconds(), "up-files/s")
			b.ReportMetric(n/down.Seconds(), "down-files/s")
			b.ReportMetric(float64(cpu1-cpu0)/1e6/n, "up-cpu-ms/file")
			b.ReportMetric(float64(cpu2-cpu1)/1e6/n, "down-cpu-ms/file")
			b.ReportMetric(float64(upc.readSlot)/n, "up-slotreads/file")
			b.ReportMetric(float64(upc.modify)/n, "up-modifies/file")
			b.ReportMetric(float64(upc.upload)/n, "up-uploads/file")
			b.ReportMetric(float64(upc.slotLists+upc.slotReads+upc.slotWrites)/n, "up-slotcalls/file")
			b.ReportMetric(float64(downc.readSlot)/n, "down-slotreads/file")
			b.ReportMetric(float64(downc.open)/n, "down-opens/file")
			b.ReportMetric(float64(downc.shareReads)/n, "down-sharereads/file")
			b.Logf("up, per %d files: %s", b.N, upc)
			b.Logf("down, per %d files: %s", b.N, downc)
		})
	}
}
