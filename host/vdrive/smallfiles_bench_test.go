package vdrive_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// timedStore is a Store that adds up the wall time spent in each of its
// calls, to say where a small file's time goes. Upload of unknown size is
// a file written through a Writer; of known size, a directory chunk
// (stored from inside a directory edit).
type timedStore struct {
	vdrive.Store
	fileUp, chunkUp, open, read, modify, edit phase
}

type phase struct{ n, ns atomic.Int64 }

func (p *phase) add(t time.Time) { p.n.Add(1); p.ns.Add(int64(time.Since(t))) }

func (s *timedStore) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	defer (map[bool]*phase{true: &s.fileUp, false: &s.chunkUp}[size < 0]).add(time.Now())
	return s.Store.Upload(ctx, r, size, progress)
}

func (s *timedStore) Open(ctx context.Context, c cap.Cap) (vdrive.File, error) {
	defer s.open.add(time.Now())
	return s.Store.Open(ctx, c)
}

func (s *timedStore) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	defer s.read.add(time.Now())
	return s.Store.ReadMutable(ctx, c)
}

func (s *timedStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	defer s.modify.add(time.Now())
	return s.Store.Modify(ctx, c, func(old []byte) ([]byte, error) {
		defer s.edit.add(time.Now())
		return fn(old)
	})
}

// BenchmarkSmallFilesOneDir is the frontends' small-file upload: writers
// goroutines (rclone's 4 transfers) each Create, Write 4 KiB and Close
// files into one directory of a drive opened as the WebDAV frontend opens
// it (WithDirCache). One op is one file. Beside files/s it reports, per
// file, the wall time inside each Store call (summed over concurrent
// callers, so the phases can add up to more than the elapsed time per
// file), the slot calls and the Modify calls, retries and conflicts.
func BenchmarkSmallFilesOneDir(b *testing.B) {
	for _, disk := range []bool{false, true} {
		for _, writers := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("disk=%v/writers=%d", disk, writers), func(b *testing.B) {
				benchSmallFiles(b, disk, writers, 0)
			})
		}
	}
}

// BenchmarkSmallFilesWriteBehind is BenchmarkSmallFilesOneDir through a
// write-behind (behind.go) with the default delay of the node
// (client.link_write_behind = 100ms), the drive opened as the frontends
// open it. The time includes making the last links.
func BenchmarkSmallFilesWriteBehind(b *testing.B) {
	for _, disk := range []bool{false, true} {
		for _, writers := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("disk=%v/writers=%d", disk, writers), func(b *testing.B) {
				benchSmallFiles(b, disk, writers, 100*time.Millisecond)
			})
		}
	}
}

func benchSmallFiles(b *testing.B, disk bool, writers int, behind time.Duration) {
	{
		{
			opts := &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
				cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
			}}
			if disk {
				opts.Backend = func(int) (storage.Backend, error) { return storagedisk.New(b.TempDir()) }
			}
			g := testgrid.New(b, 5, opts)
			c := newClient(b, g)
			ts := &timedStore{Store: vdrive.GridStore(c)}
			ctx := ctxFor(b, 10*time.Minute)
			root, err := vdrive.NewRoot(ctx, ts)
			if err != nil {
				b.Fatal(err)
			}
			var bh *vdrive.Behind
			var d *vdrive.Drive
			if behind > 0 {
				if bh, err = vdrive.OpenBehind(ts, vdrive.BehindConfig{Dir: b.TempDir(), Delay: behind}); err != nil {
					b.Fatal(err)
				}
				defer bh.Close()
				d, _ = vdrive.New(bh, root.String(), vdrive.WithDirCache(time.Second), vdrive.WithWriteBehind())
			} else {
				d, _ = vdrive.New(ts, root.String(), vdrive.WithDirCache(time.Second))
			}
			if err := d.Mkdir(ctx, "/up"); err != nil {
				b.Fatal(err)
			}
			for _, p := range []*phase{&ts.fileUp, &ts.chunkUp, &ts.open, &ts.read, &ts.modify, &ts.edit} {
				p.n.Store(0)
				p.ns.Store(0)
			}
			st0, ms0 := c.Stats(), c.MutableStats()
			var next atomic.Int64
			var create phase
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					data := pseudo(byte(w), 4096)
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						data[0], data[1], data[2] = byte(i), byte(i>>8), byte(w)
						t := time.Now()
						fw, err := d.Create(ctx, fmt.Sprintf("/up/f%06d", i))
						create.add(t)
						if err == nil {
							_, err = fw.Write(data)
							if err == nil {
								err = fw.Close()
							}
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			if bh != nil {
				if err := bh.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			n := float64(b.N)
			st, ms := c.Stats(), c.MutableStats()
			b.ReportMetric(n/b.Elapsed().Seconds(), "files/s")
			ms1 := func(p *phase) float64 { return float64(p.ns.Load()) / 1e6 / n }
			b.ReportMetric(ms1(&create), "ms-create/file")
			b.ReportMetric(ms1(&ts.fileUp), "ms-upload/file")
			b.ReportMetric(ms1(&ts.read), "ms-dirread/file")
			b.ReportMetric(ms1(&ts.modify), "ms-modify/file")
			b.ReportMetric(ms1(&ts.edit), "ms-edit/file")
			b.ReportMetric(ms1(&ts.chunkUp), "ms-chunkput/file")
			b.ReportMetric(float64(ts.modify.n.Load())/n, "modifies/file")
			b.ReportMetric(float64(ts.edit.n.Load())/n, "edits/file")
			b.ReportMetric(float64(ts.read.n.Load())/n, "dirreads/file")
			b.ReportMetric(float64(ms.Retries-ms0.Retries)/n, "retries/file")
			b.ReportMetric(float64(ms.Conflicts-ms0.Conflicts)/n, "conflicts/file")
			b.ReportMetric(float64(st.SlotLists-st0.SlotLists)/n, "lists/file")
			b.ReportMetric(float64(st.SlotReads-st0.SlotReads)/n, "reads/file")
			b.ReportMetric(float64(st.SlotWrites-st0.SlotWrites)/n, "writes/file")
			if got := names(b, d, "/up"); len(got) != b.N {
				b.Fatalf("/up lists %d files, want %d", len(got), b.N)
			}
		}
	}
}
