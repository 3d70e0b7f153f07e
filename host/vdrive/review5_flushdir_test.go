package vdrive_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestReview5ReadDirOfABigFolder: a folder with more links pending than
// one change makes (maxLinksPerChange, 1,024: a replayed journal, or
// adds racing the MaxPending check) read by a second drive on the same
// write-behind: the flush before the read makes every pending link, so
// the listing holds them all and none stays pending.
func TestReview5ReadDirOfABigFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("1,100 links")
	}
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b := behindWith(t, g, vdrive.BehindConfig{Dir: dir, Delay: never, FlushAt: 5000, MaxPending: 5000, Logger: testLogger(t)})
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 3*time.Minute)
	if err := d.MkdirAll(ctx, "/sub"); err != nil {
		t.Fatal(err)
	}
	const n = 1100
	for i := range n {
		putBytes(t, d, fmt.Sprintf("/sub/f%04d", i), []byte("x"))
	}
	if p := b.Pending(); p != n {
		t.Fatalf("%d links pending before the read, want %d", p, n)
	}
	if got := names(t, d, "/sub"); len(got) != n {
		t.Fatalf("%d names listed in a folder with %d links pending, want %d", len(got), n, n)
	}
	if p := b.Pending(); p != 0 {
		t.Fatalf("%d links still pending after the read, want 0", p)
	}
	// The grid itself, read without the write-behind, holds them all.
	if got := names(t, open(t, g, root), "/sub"); len(got) != n {
		t.Fatalf("%d names in the folder on the grid, want %d", len(got), n)
	}
}
