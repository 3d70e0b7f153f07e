package vdrive_test

import (
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

// behindWith opens a write-behind with cfg over a counting store of g.
func behindWith(t testing.TB, g *testgrid.Grid, cfg vdrive.BehindConfig) *vdrive.Behind {
	t.Helper()
	b, _ := behindWithCounter(t, g, cfg)
	return b
}

func behindWithCounter(t testing.TB, g *testgrid.Grid, cfg vdrive.BehindConfig) (*vdrive.Behind, *slotCounter) {
	t.Helper()
	sc := &slotCounter{Store: vdrive.GridStore(newClient(t, g))}
	b, err := vdrive.OpenBehind(sc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, sc
}

// TestWriteBehindPathCache: the path check of a change trusts folders
// this node read or wrote within PathCacheTTL, so links into a folder
// whose path it just wrote cost no folder read beyond what a fresh walk
// saves; once the period is over, another node's removal is seen.
func TestWriteBehindPathCache(t *testing.T) {
	g := newGrid(t)
	const ttl = 300 * time.Millisecond
	flushReads := func(t *testing.T, pathTTL time.Duration) int64 {
		root := newRootCap(t, g)
		b, sc := behindWithCounter(t, g, vdrive.BehindConfig{Dir: t.TempDir(), Delay: never, PathCacheTTL: pathTTL, Logger: testLogger(t)})
		d := frontDrive(t, b, root)
		ctx := ctxFor(t, time.Minute)
		if err := d.MkdirAll(ctx, "/a/b/c"); err != nil {
			t.Fatal(err)
		}
		putBytes(t, d, "/a/b/c/f", []byte("f"))
		before := sc.reads.Load()
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := get(t, open(t, g, root), "/a/b/c/f"); string(got) != "f" {
			t.Fatalf("file read back %q", got)
		}
		return sc.reads.Load() - before
	}
	t.Run("cached walk reads no folder of the path", func(t *testing.T) {
		fresh, cached := flushReads(t, -1), flushReads(t, time.Minute)
		if fresh-cached < 3 {
			t.Fatalf("a flush read %d folders with a fresh walk and %d with a cached one: want the 3 folders of the path saved", fresh, cached)
		}
	})
	t.Run("removal seen after the period", func(t *testing.T) {
		root := newRootCap(t, g)
		dir := t.TempDir()
		b := behindWith(t, g, vdrive.BehindConfig{Dir: dir, Delay: never, PathCacheTTL: ttl, Logger: testLogger(t)})
		d := frontDrive(t, b, root)
		ctx := ctxFor(t, time.Minute)
		if err := d.MkdirAll(ctx, "/up/in"); err != nil {
			t.Fatal(err)
		}
		putBytes(t, d, "/up/in/a", []byte("a"))
		if err := open(t, g, root).RemoveAll(ctx, "/up"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl + 100*time.Millisecond)
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if fl := failedLinks(t, dir); len(fl) != 1 || fl[0].Name != "a" {
			t.Fatalf("failed links %+v, want a's link kept as its folder is gone", fl)
		}
	})
}
