package vdrive_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

// gatedBehind opens a write-behind in dir over a new client of g whose
// folder changes can be held at a gate (gateStore; after: once made).
func gatedBehind(t *testing.T, g *testgrid.Grid, dir string, after bool, pathTTL time.Duration) (*vdrive.Behind, *gateStore) {
	t.Helper()
	gs := &gateStore{slotCounter: &slotCounter{Store: vdrive.GridStore(newClient(t, g))}, after: after,
		entered: make(chan struct{}, 1), release: make(chan struct{})}
	b, err := vdrive.OpenBehind(gs, vdrive.BehindConfig{Dir: dir, Delay: never, PathCacheTTL: pathTTL, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, gs
}

// atGate arms gs, runs op and waits until op's folder change is at the
// gate; op's error comes on the channel once the gate is opened.
func atGate(t *testing.T, ctx context.Context, gs *gateStore, op func() error) chan error {
	t.Helper()
	gs.armed.Store(true)
	res := make(chan error, 1)
	go func() { res <- op() }()
	select {
	case <-gs.entered:
	case <-ctx.Done():
		t.Fatal("the folder change never came to the gate")
	}
	return res
}

// setMtime sets p's mtime through d.
func setMtime(t *testing.T, d *vdrive.Drive, p string, mtime time.Time) {
	t.Helper()
	if err := d.SetMetadata(ctxFor(t, time.Minute), p, func(m *vdrive.Metadata) error {
		m.Mtime = mtime
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestWriteBehindCrashDuringOwnMove: a file put into a folder while this
// node moves it (after the move made the links below it, before its
// folder change lands) is acknowledged with the folder's old path; the
// node then dies before the link is made. The replay, which has lost the
// node's memory of its moves, finds the folder at the path the record
// says the move took it to, by the folder's identity, and makes the
// link there instead of keeping it in the failed links.
func TestWriteBehindCrashDuringOwnMove(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, gs := gatedBehind(t, g, dir, false, -1)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	if err := d.MkdirAll(ctx, "/in/tmp"); err != nil {
		t.Fatal(err)
	}
	// The move's change of /in waits.
	moved := atGate(t, ctx, gs, func() error { return d.Rename(ctx, "/in/tmp", "/in/final") })
	putBytes(t, d, "/in/tmp/x", []byte("acknowledged during the move"))
	close(gs.release)
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	vdrive.Abandon(b) // the crash: x is journaled, not made

	b2, _ := behindOn(t, g, dir, never)
	if n := b2.Pending(); n != 1 {
		t.Fatalf("replay: %d pending, want 1", n)
	}
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if fl := failedLinks(t, dir); len(fl) != 0 {
		t.Fatalf("a file put during this node's move, replayed after a crash, is in the failed links: %s", fl[0].Error)
	}
	if got := get(t, open(t, g, root), "/in/final/x"); string(got) != "acknowledged during the move" {
		t.Fatalf("/in/final/x: %q", got)
	}
}

// TestWriteBehindReplayMetaAfterOtherEdit: the node dies after the change
// that made a file's link and before the one that makes the metadata set
// on it meanwhile (rclone's SETSTAT of the mtime); the journal keeps that
// metadata. When another node edits the file's metadata before this node
// starts again, the replay does not make the older metadata over that
// newer edit: the record is dropped, logged, and nothing goes to the
// failed links (the file is linked). Left alone, the replay makes it.
func TestWriteBehindReplayMetaAfterOtherEdit(t *testing.T) {
	for _, otherEdits := range []bool{false, true} {
		t.Run(fmt.Sprintf("other node edits %v", otherEdits), func(t *testing.T) {
			g := newGrid(t)
			root := newRootCap(t, g)
			dir := t.TempDir()
			b, gs := gatedBehind(t, g, dir, true, 0)
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			if err := d.Mkdir(ctx, "/in"); err != nil {
				t.Fatal(err)
			}
			putBytes(t, d, "/in/f", pseudo(7, 4096))
			// The change making the link waits once made.
			flushed := atGate(t, ctx, gs, func() error { return b.Flush(ctx) })
			mine := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
			setMtime(t, d, "/in/f", mine)
			close(gs.release)
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			vdrive.Abandon(b) // the crash: the link made, its metadata not

			far := open(t, g, root)
			theirs := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
			if otherEdits {
				setMtime(t, far, "/in/f", theirs)
			}
			var logged bytes.Buffer
			var mu sync.Mutex
			log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: lockedWriter{&mu, &logged}})
			b2, err := vdrive.OpenBehind(vdrive.GridStore(newClient(t, g)), vdrive.BehindConfig{Dir: dir, Delay: never, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b2.Close() })
			if n := b2.Pending(); n != 1 {
				t.Fatalf("replay: %d pending, want 1 (the metadata)", n)
			}
			if err := b2.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n := b2.Pending(); n != 0 {
				t.Fatalf("%d links pending after the replay", n)
			}
			want := mine
			if otherEdits {
				want = theirs
			}
			in, err := open(t, g, root).Stat(ctx, "/in/f")
			if err != nil || !in.ModTime().Equal(want) || in.Size() != 4096 {
				t.Fatalf("after the replay another node sees %v %v, want mtime %s", in, err, want)
			}
			if fl := failedLinks(t, dir); len(fl) != 0 {
				t.Fatalf("failed links %+v, want none (the file is linked)", fl)
			}
			mu.Lock()
			out := logged.String()
			mu.Unlock()
			if got := strings.Contains(out, "another node changed the file's metadata since"); got != otherEdits {
				t.Fatalf("dropped record logged %v, want %v:\n%s", got, otherEdits, out)
			}
		})
	}
}

// TestWriteBehindFailedOnceWithMeta: metadata set on a file while the
// change making its link is under way (rclone's SETSTAT) is a newer
// record of the same link. When that change fails for good (another node
// made a directory at the name), the file is listed once in the failed
// links, by the newer record, with the metadata acknowledged; not once
// per record.
func TestWriteBehindFailedOnceWithMeta(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, gs := gatedBehind(t, g, dir, false, 0)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	if err := d.Mkdir(ctx, "/in"); err != nil {
		t.Fatal(err)
	}
	l := putBytes(t, d, "/in/f", pseudo(9, 4096))
	// The change making the link waits before it is sent.
	flushed := atGate(t, ctx, gs, func() error { return b.Flush(ctx) })
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
	setMtime(t, d, "/in/f", mtime)
	if err := open(t, g, root).Mkdir(ctx, "/in/f"); err != nil {
		t.Fatal(err)
	}
	close(gs.release)
	<-flushed
	b.Flush(ctx) // the metadata's record; it fails too
	if n := b.Pending(); n != 0 {
		t.Fatalf("%d links pending, want none", n)
	}
	fl := failedLinks(t, dir)
	if len(fl) != 1 {
		t.Fatalf("%d failed links %+v, want the file once", len(fl), fl)
	}
	if f := fl[0]; f.Name != "f" || f.Cap != l.Info.ReadCap() || !f.Mtime.Equal(mtime) || !strings.Contains(f.Error, vdrive.ErrIsDir.Error()) {
		t.Fatalf("failed link %+v, want f with its cap, mtime %s and the directory's error", f, mtime)
	}
}
