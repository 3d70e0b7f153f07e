package vdrive_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestReview5OwnMoveThroughAnotherRoot: this node's own move (or rm -r)
// of a folder through a drive whose root is not the root the pending
// links were written through (an SFTP account rooted at a subfolder, a
// WebDAV or CLI drive at the alias above it) must make the links below
// first, as through the same root: the files go with their folder, and
// none ends in the failed links.
func TestReview5OwnMoveThroughAnotherRoot(t *testing.T) {
	g := newGrid(t)
	for _, remove := range []bool{false, true} {
		name := "move"
		if remove {
			name = "remove"
		}
		t.Run(name, func(t *testing.T) {
			root := newRootCap(t, g)
			dir := t.TempDir()
			b, _ := behindOn(t, g, dir, never)
			top := frontDrive(t, b, root)
			ctx := ctxFor(t, 2*time.Minute)
			if err := top.MkdirAll(ctx, "/acct/docs"); err != nil {
				t.Fatal(err)
			}
			acct, err := top.Stat(ctx, "/acct")
			if err != nil {
				t.Fatal(err)
			}
			sub := frontDrive(t, b, acct.WriteCap())
			putBytes(t, sub, "/docs/f", []byte("ff"))
			if remove {
				if err := top.RemoveAll(ctx, "/acct/docs"); err != nil {
					t.Fatal(err)
				}
			} else if err := top.Rename(ctx, "/acct/docs", "/acct/moved"); err != nil {
				t.Fatal(err)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if fl := failedLinks(t, dir); len(fl) != 0 {
				t.Fatalf("failed links after this node's own %s through another root: %+v", name, fl)
			}
			if !remove {
				far := open(t, g, root)
				if got := get(t, far, "/acct/moved/f"); string(got) != "ff" {
					t.Fatalf("moved file: %q", got)
				}
			}
		})
	}
}

// TestReview5OwnMoveOfABigFolder: a folder with more links pending than
// one change makes (maxLinksPerChange, 1,024: a replayed journal, or
// adds racing the MaxPending check) moved or removed by this node: every
// pending link below it is made first, none is left to find its folder
// gone.
func TestReview5OwnMoveOfABigFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("1,100 links")
	}
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b := behindWith(t, g, vdrive.BehindConfig{Dir: dir, Delay: never, FlushAt: 5000, MaxPending: 5000, Logger: testLogger(t)})
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 3*time.Minute)
	if err := d.MkdirAll(ctx, "/tmp/sub"); err != nil {
		t.Fatal(err)
	}
	const n = 1100
	for i := range n {
		putBytes(t, d, fmt.Sprintf("/tmp/sub/f%04d", i), []byte("x"))
	}
	if p := b.Pending(); p != n {
		t.Fatalf("%d links pending before the move, want %d", p, n)
	}
	if err := d.Rename(ctx, "/tmp", "/final"); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if fl := failedLinks(t, dir); len(fl) != 0 {
		t.Fatalf("%d failed links after this node's own move of a folder with %d links pending: %s", len(fl), n, fl[0].Error)
	}
	if got := names(t, open(t, g, root), "/final/sub"); len(got) != n {
		t.Fatalf("%d files in the moved folder, want %d", len(got), n)
	}
}

// TestReview5UnrecordedFailedLinkCounted: a link given up (its folder
// removed by another node) that cannot be kept in the failed links (the
// lock or the file cannot be opened: a full disk, a read-only or
// lock-less filesystem) stays in the journal for the next start, and
// Stats must still show it somewhere: as pending, as failed, or with an
// error, not as a node with nothing to do.
func TestReview5UnrecordedFailedLinkCounted(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b := behindWith(t, g, vdrive.BehindConfig{Dir: dir, Delay: never, PathCacheTTL: -1, Logger: testLogger(t)})
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 2*time.Minute)
	if err := d.MkdirAll(ctx, "/up/in"); err != nil {
		t.Fatal(err)
	}
	putBytes(t, d, "/up/in/a.txt", pseudo(7, 3000))
	if err := open(t, g, root).RemoveAll(ctx, "/up/in"); err != nil {
		t.Fatal(err)
	}
	// The lock file cannot be opened.
	if err := os.Mkdir(filepath.Join(dir, vdrive.FailedLinksLock), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = b.Flush(ctx)
	st := b.Stats()
	if st.Pending == 0 && st.Failed == 0 && st.FailedError == "" {
		t.Fatalf("a link neither made nor kept in the failed links is nowhere in Stats: %+v", st)
	}
}

// TestReview5PutDuringOwnMove: a file put into a folder while this
// node's own move of that folder is being written (after the move made
// the links pending below it, before its folder change lands) is
// acknowledged; without write-behind its link would go into the folder
// by its cap and so move with it. With write-behind it must not end in
// the failed links as if another node had removed the folder.
func TestReview5PutDuringOwnMove(t *testing.T) {
	g := newGrid(t)
	for _, thenRemoved := range []bool{false, true} {
		t.Run(fmt.Sprintf("then removed by another node %v", thenRemoved), func(t *testing.T) {
			root := newRootCap(t, g)
			dir := t.TempDir()
			gs := &gateStore{slotCounter: &slotCounter{Store: vdrive.GridStore(newClient(t, g))},
				entered: make(chan struct{}, 1), release: make(chan struct{})}
			b, err := vdrive.OpenBehind(gs, vdrive.BehindConfig{Dir: dir, Delay: never, PathCacheTTL: -1, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			if err := d.MkdirAll(ctx, "/tmp"); err != nil {
				t.Fatal(err)
			}
			tmp, err := d.Stat(ctx, "/tmp")
			if err != nil {
				t.Fatal(err)
			}
			gs.armed.Store(true) // the move's change of the root waits
			moved := make(chan error, 1)
			go func() { moved <- d.Rename(ctx, "/tmp", "/final") }()
			select {
			case <-gs.entered:
			case <-ctx.Done():
				t.Fatal("the move never changed the root")
			}
			putBytes(t, d, "/tmp/x", []byte("acknowledged during the move"))
			close(gs.release)
			if err := <-moved; err != nil {
				t.Fatal(err)
			}
			far := open(t, g, root)
			if thenRemoved {
				if err := far.RemoveAll(ctx, "/final"); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			fl := failedLinks(t, dir)
			if thenRemoved {
				if len(fl) != 1 || fl[0].Name != "x" {
					t.Fatalf("failed links %+v, want x (its folder, moved by this node, then removed by another)", fl)
				}
				if got := names(t, open(t, g, tmp.WriteCap()), "/"); len(got) != 0 {
					t.Fatalf("the link was made in the removed folder: %v", got)
				}
				return
			}
			if len(fl) != 0 {
				t.Fatalf("a file put during this node's own move is in the failed links: %s", fl[0].Error)
			}
			if got := get(t, far, "/final/x"); string(got) != "acknowledged during the move" {
				t.Fatalf("/final/x: %q", got)
			}
		})
	}
}
