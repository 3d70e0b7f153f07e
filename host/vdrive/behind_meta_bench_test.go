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
)

// BenchmarkSmallFilesSetMeta is rclone's upload over SFTP through a
// write-behind (100 ms, the node's default): writers goroutines each, per
// 4 KiB file, Stat the folder, Create, Write, Close, SetMetadata (the
// SETSTAT of the mtime) and Stat the file, in one folder. One op is one
// file. It reports the folder changes (modifies) and slot calls per file,
// and checks every mtime at the end, on another node. lag is added to
// each folder change and file upload, as a loaded grid's round trips take
// (an in-memory grid changes a folder in ~1 ms, so a change is rarely in
// flight when a SETSTAT comes; over a real grid it takes 30-100 ms, and
// rclone's 4 transfers make ~60-160 files/s), and a quarter of it between
// a file's close and its SetMetadata (the SFTP round trips).
func BenchmarkSmallFilesSetMeta(b *testing.B) {
	for _, writers := range []int{1, 4} {
		for _, lag := range []time.Duration{0, 40 * time.Millisecond} {
			b.Run(fmt.Sprintf("writers=%d/lag=%s", writers, lag), func(b *testing.B) {
				benchSetMeta(b, writers, lag)
			})
		}
	}
}

// laggedStore adds lag to every folder change and file upload.
type laggedStore struct {
	vdrive.Store
	lag time.Duration
}

func (s *laggedStore) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	if size < 0 { // a file's (a directory chunk's size is known)
		time.Sleep(s.lag)
	}
	return s.Store.Upload(ctx, r, size, progress)
}

func (s *laggedStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	time.Sleep(s.lag)
	return s.Store.Modify(ctx, c, fn)
}

func benchSetMeta(b *testing.B, writers int, lag time.Duration) {
	{
		{
			g := testgrid.New(b, 5, &testgrid.Options{Server: func(_ int, cfg *storageserver.Config) {
				cfg.ValidateSlotWrite = mutable.ValidateSlotWrite
			}})
			c := newClient(b, g)
			ts := &timedStore{Store: &laggedStore{Store: vdrive.GridStore(c), lag: lag}}
			ctx := ctxFor(b, 10*time.Minute)
			root, err := vdrive.NewRoot(ctx, ts)
			if err != nil {
				b.Fatal(err)
			}
			bh, err := vdrive.OpenBehind(ts, vdrive.BehindConfig{Dir: b.TempDir(), Delay: 100 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer bh.Close()
			d, _ := vdrive.New(bh, root.String(), vdrive.WithDirCache(time.Second), vdrive.WithWriteBehind())
			if err := d.Mkdir(ctx, "/up"); err != nil {
				b.Fatal(err)
			}
			ts.modify.n.Store(0)
			ts.read.n.Store(0)
			st0 := c.Stats()
			mtime := func(i int64) time.Time { return time.Unix(1600000000+i, 0).UTC() }
			var next, slow atomic.Int64
			var setMeta phase
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			b.ResetTimer()
			for w := range writers {
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
						p := fmt.Sprintf("/up/f%06d", i)
						err := func() error {
							if _, err := d.Stat(ctx, "/up"); err != nil {
								return err
							}
							fw, err := d.Create(ctx, p)
							if err != nil {
								return err
							}
							if _, err := fw.Write(data); err != nil {
								return err
							}
							if err := fw.Close(); err != nil {
								return err
							}
							// The CLOSE answer's and the SETSTAT's trip over
							// SSH and through rclone.
							time.Sleep(lag / 4)
							t := time.Now()
							if err := d.SetMetadata(ctx, p, func(m *vdrive.Metadata) error {
								m.Mtime = mtime(i)
								return nil
							}); err != nil {
								return err
							}
							setMeta.add(t)
							if lag > 0 && time.Since(t) >= lag {
								slow.Add(1)
							}
							in, err := d.Stat(ctx, p)
							if err == nil && !in.ModTime().Equal(mtime(i)) {
								err = fmt.Errorf("%s: mtime %s after SetMetadata, want %s", p, in.ModTime(), mtime(i))
							}
							return err
						}()
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := bh.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			n := float64(b.N)
			st := c.Stats()
			b.ReportMetric(n/b.Elapsed().Seconds(), "files/s")
			b.ReportMetric(float64(ts.modify.n.Load())/n, "modifies/file")
			// A SetMetadata that took a folder change's lag or more made
			// (or waited for) one itself instead of journaling.
			b.ReportMetric(float64(slow.Load())/n, "slow-setmeta/file")
			b.ReportMetric(float64(setMeta.ns.Load())/1e6/n, "ms-setmeta/file")
			b.ReportMetric(float64(ts.read.n.Load())/n, "dirreads/file")
			b.ReportMetric(float64(st.SlotLists-st0.SlotLists)/n, "lists/file")
			b.ReportMetric(float64(st.SlotReads-st0.SlotReads)/n, "reads/file")
			b.ReportMetric(float64(st.SlotWrites-st0.SlotWrites)/n, "writes/file")
			// The journal's group commit: batches written (one
			// fdatasync each) and callers' commits per file, and the
			// time its batches took.
			txs, ops, _, _, busy := vdrive.JournalCounts(bh)
			b.ReportMetric(float64(txs)/n, "journal-tx/file")
			b.ReportMetric(float64(ops)/n, "journal-commits/file")
			b.ReportMetric(float64(busy.Microseconds())/1e3/float64(max(txs, 1)), "ms/journal-tx")
			far := open(b, g, root.String())
			infos, err := far.ReadDir(ctx, "/up")
			if err != nil {
				b.Fatal(err)
			}
			if len(infos) != b.N {
				b.Fatalf("/up lists %d files, want %d", len(infos), b.N)
			}
			for _, in := range infos {
				var i int64
				if _, err := fmt.Sscanf(in.Name(), "f%06d", &i); err != nil || !in.ModTime().Equal(mtime(i)) {
					b.Fatalf("%s: mtime %s on another node, want %s (%v)", in.Name(), in.ModTime(), mtime(i), err)
				}
			}
		}
	}
}
