package vdrive_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

const bigN = 10_000

// bigDir makes /big with bigN entries; sizedDir with n (one change of LinkMany): nine in
// ten link a real 1 KiB file, one in ten a directory by its write cap, so
// entries have the sizes real ones have. It returns the drive's root cap.
func bigDir(t testing.TB, g *testgrid.Grid, c *grid.Client) string {
	t.Helper()
	return sizedDir(t, g, c, bigN)
}

func sizedDir(t testing.TB, g *testgrid.Grid, c *grid.Client, n int) string {
	t.Helper()
	ctx := ctxFor(t, 5*time.Minute)
	st := vdrive.GridStore(c)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(st, root.String())
	if err := d.Mkdir(ctx, "/big"); err != nil {
		t.Fatal(err)
	}
	if err := d.Mkdir(ctx, "/sub"); err != nil {
		t.Fatal(err)
	}
	sub, _ := d.Stat(ctx, "/sub")
	fc, err := c.Upload(ctx, bytes.NewReader(pseudo(9, 1024)), 1024, nil)
	if err != nil {
		t.Fatal(err)
	}
	links := make(map[string]string, n)
	for i := 0; i < n; i++ {
		if i%10 == 0 {
			links[bigName(i)] = sub.WriteCap()
		} else {
			links[bigName(i)] = fc.String()
		}
	}
	if err := d.LinkMany(ctx, "/big", links); err != nil {
		t.Fatal(err)
	}
	return root.String()
}

func bigName(i int) string { return fmt.Sprintf("file-%05d.dat", i) }

// TestBigDirectory: a 10,000-entry directory lists correctly and quickly
// from a cold client, and adding one entry reads and writes a bounded
// amount (one bucket chunk and the root) whatever the directory's size.
func TestBigDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 entries")
	}
	g := newGrid(t)
	rootCap := bigDir(t, g, newClient(t, g))
	ctx := ctxFor(t, 2*time.Minute)

	c := newClient(t, g)
	d, _ := vdrive.New(vdrive.GridStore(c), rootCap)
	start := time.Now()
	infos, err := d.ReadDir(ctx, "/big")
	list := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != bigN {
		t.Fatalf("lists %d entries, want %d", len(infos), bigN)
	}
	for i, in := range infos {
		if in.Name() != bigName(i) || in.IsDir() != (i%10 == 0) {
			t.Fatalf("entry %d is %s (dir %v)", i, in.Name(), in.IsDir())
		}
	}
	if w := infos[0].WriteCap(); !bytes.HasPrefix([]byte(w), []byte("tarn:dir:")) {
		t.Fatalf("directory entry's write cap %q", w)
	}
	t.Logf("cold list of %d entries: %v (%d chunk downloads)", bigN, list, c.Stats().Downloads)

	before := c.Stats()
	start = time.Now()
	if err := d.Link(ctx, "/big/added", cap.Literal{Data: []byte("x")}.String()); err != nil {
		t.Fatal(err)
	}
	add := time.Since(start)
	after := c.Stats()
	up, down := after.Uploads-before.Uploads, after.Downloads-before.Downloads
	t.Logf("add one entry: %v (%d chunk uploads, %d chunk downloads)", add, up, down)
	if up > 2 || down > 1 {
		t.Fatalf("adding one entry uploaded %d and downloaded %d chunks; want <= 2 and <= 1", up, down)
	}
	if info, err := d.Stat(ctx, "/big/added"); err != nil || info.Size() != 1 {
		t.Fatalf("stat added: %v %v", info, err)
	}
	if got, err := d.ReadDir(ctx, "/big"); err != nil || len(got) != bigN+1 {
		t.Fatalf("after adding: %d entries, %v", len(got), err)
	}
	if !raceEnabled && list > 3*time.Second {
		t.Fatalf("listing %d entries took %v", bigN, list)
	}
}

// BenchmarkBigDirectory times, on a 10,000-entry directory over a
// 5-server test grid, a cold list (fresh client, empty caches), a warm
// list (chunks cached) and adding one entry.
func BenchmarkBigDirectory(b *testing.B) {
	g := newGrid(b)
	rootCap := bigDir(b, g, newClient(b, g))
	ctx := ctxFor(b, 10*time.Minute)
	b.Run("list-cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			d, _ := vdrive.New(vdrive.GridStore(newClient(b, g)), rootCap)
			infos, err := d.ReadDir(ctx, "/big")
			if err != nil || len(infos) < bigN {
				b.Fatal(len(infos), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
	})
	d, _ := vdrive.New(vdrive.GridStore(newClient(b, g)), rootCap)
	b.Run("list-warm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if infos, err := d.ReadDir(ctx, "/big"); err != nil || len(infos) < bigN {
				b.Fatal(len(infos), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
	})
	b.Run("add-one", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := d.Link(ctx, fmt.Sprintf("/big/added-%d-%d", b.N, i), cap.Literal{Data: []byte("x")}.String()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/add")
	})
}

// BenchmarkAddOne times adding one entry to directories of 100, 1,000 and
// 10,000 entries with no chunk cache (each add reads the bucket's chunk,
// writes a new one and the root), on grids of 5 and 15 servers (3-of-5
// clients): the cost should barely grow with either.
func BenchmarkAddOne(b *testing.B) {
	for _, servers := range []int{5, 15} {
		g := newGridN(b, servers)
		c := newClient(b, g)
		ctx := ctxFor(b, 10*time.Minute)
		for _, n := range []int{100, 1000, bigN} {
			rootCap := sizedDir(b, g, c, n)
			d, _ := vdrive.New(vdrive.GridStore(c), rootCap, vdrive.WithCache(0))
			b.Run(fmt.Sprintf("servers=%d/entries=%d", servers, n), func(b *testing.B) {
				before := c.Stats()
				for i := 0; i < b.N; i++ {
					if err := d.Link(ctx, fmt.Sprintf("/big/added-%d-%d", b.N, i), cap.Literal{Data: []byte("x")}.String()); err != nil {
						b.Fatal(err)
					}
				}
				after := c.Stats()
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/add")
				b.ReportMetric(float64(after.BytesUploaded-before.BytesUploaded)/float64(b.N)/1024, "KiB-up/add")
			})
		}
	}
}

// BenchmarkPutSmall times storing 1 KiB files one by one into a directory
// (an immutable upload and a directory change each): the many-small-files
// case of SFTP and cp -r.
func BenchmarkPutSmall(b *testing.B) {
	g := newGrid(b)
	d := newDrive(b, g)
	ctx := ctxFor(b, 10*time.Minute)
	if err := d.Mkdir(ctx, "/small"); err != nil {
		b.Fatal(err)
	}
	data := pseudo(7, 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data[0], data[1] = byte(i), byte(i>>8)
		if err := d.Put(ctx, fmt.Sprintf("/small/f%06d", i), bytes.NewReader(data), int64(len(data)), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}
