package vdrive_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestWriteBehindSharesChunks: the drives of one node (opened over its
// write-behind) share decoded directory chunks, so none reads back from
// the grid a chunk another wrote: not the chunks of a folder filled
// through one drive, nor those the write-behind's flusher writes when it
// makes pending links. Before, each drive had its own chunk cache, and a
// frontend's look-up of a new name after each flush read the rewritten
// bucket's chunk (an SFTP upload of a small file into a big folder read
// 0.7 shares per file). Another node (its own client and drives) does
// read them: the folder does keep its entries in chunks.
func TestWriteBehindSharesChunks(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	b, _ := behindOn(t, g, t.TempDir(), never)
	a := frontDrive(t, b, root)
	ctx := ctxFor(t, 3*time.Minute)
	if err := a.Mkdir(ctx, "/big"); err != nil {
		t.Fatal(err)
	}
	seed := putBytes(t, a, "/seed", pseudo(7, 5000))
	const n = 600
	links := map[string]string{}
	for i := range n {
		links[fmt.Sprintf("old%04d", i)] = seed.Info.ReadCap()
	}
	if err := a.LinkMany(ctx, "/big", links); err != nil {
		t.Fatal(err)
	}
	far := open(t, g, root)
	r0 := g.Counts().Reads
	if _, err := far.Stat(ctx, "/big/old0001"); err != nil {
		t.Fatal(err)
	}
	if g.Counts().Reads == r0 {
		t.Fatal("another node found a name of a 600-entry folder without reading a chunk: the folder has none")
	}

	bd := frontDrive(t, b, root) // another frontend of the node
	lookAll := func(what string, more int) {
		t.Helper()
		r := g.Counts().Reads
		for i := range n {
			if _, err := bd.Stat(ctx, fmt.Sprintf("/big/old%04d", i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range more {
			if _, err := bd.StatCached(ctx, fmt.Sprintf("/big/new%04d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := bd.StatCached(ctx, "/big/missing"); err == nil {
			t.Fatal("stat of a missing name succeeded")
		}
		if got := g.Counts().Reads - r; got != 0 {
			t.Errorf("%s: the node's other drive read shares %d times to find %d names", what, got, n+more)
		}
	}
	lookAll("after LinkMany through another drive", 0)

	const news = 30
	for i := range news {
		putBytes(t, a, fmt.Sprintf("/big/new%04d", i), []byte(fmt.Sprintf("new file %d", i)))
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.Pending(); n != 0 {
		t.Fatalf("%d links pending after Flush", n)
	}
	lookAll("after the flusher rewrote the buckets", news)

	for i := range news {
		if got := get(t, far, fmt.Sprintf("/big/new%04d", i)); !bytes.Equal(got, []byte(fmt.Sprintf("new file %d", i))) {
			t.Fatalf("another node reads %q for new%04d", got, i)
		}
	}
}
