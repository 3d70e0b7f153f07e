package vdrive_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// writeFile writes data at p through d by the named frontend path: "put"
// (PutLinked, as WebDAV PUT) or "create" (Create, Write, Close, as an
// SFTP upload).
func writeFile(t testing.TB, d *vdrive.Drive, how, p string, data []byte) error {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	switch how {
	case "put":
		_, err := d.PutLinked(ctx, p, bytes.NewReader(data), int64(len(data)), nil)
		return err
	case "create":
		w, err := d.Create(ctx, p)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			w.Abort()
			return err
		}
		return w.Close()
	}
	t.Fatalf("unknown way to write %q", how)
	return nil
}

// TestWriteBehindBackpressureFailing: once a folder's change of pending
// links failed, a new file into it is not acknowledged behind: its
// Close or PutLinked makes the folder's change itself and returns the
// grid's error, and the file is not linked later; the links acknowledged
// before stay pending. After the grid recovers, the next file's change
// makes them all, and files are written behind again (no change per
// file); every acknowledged file is in the folder, seen from another
// node, and no refused one is (nor replaces an acknowledged one).
func TestWriteBehindBackpressureFailing(t *testing.T) {
	for _, how := range []string{"put", "create"} {
		t.Run(how, func(t *testing.T) {
			g := newGrid(t)
			root := newRootCap(t, g)
			rs := &refusingStore{slotCounter: slotCounter{Store: vdrive.GridStore(newClient(t, g))}}
			b, err := vdrive.OpenBehind(rs, vdrive.BehindConfig{Dir: t.TempDir(), Delay: never, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			for _, n := range []string{"/a", "/b"} {
				if err := writeFile(t, d, how, n, []byte(n)); err != nil {
					t.Fatalf("write %s behind: %v", n, err)
				}
			}
			rs.refuse.Store(true)
			if err := b.Flush(ctx); !errors.Is(err, errRefused) {
				t.Fatalf("flush while refused: %v, want %v", err, errRefused)
			}
			// /a again: a pending file is not replaced by a refused one.
			for _, n := range []string{"/c", "/d", "/a"} {
				before := rs.modifies.Load()
				err := writeFile(t, d, how, n, []byte("refused "+n))
				if !errors.Is(err, errRefused) {
					t.Fatalf("write %s into a folder whose change failed: %v, want %v", n, err, errRefused)
				}
				if rs.modifies.Load() == before {
					t.Fatalf("write %s failed without trying the folder's change", n)
				}
			}
			if n := b.Pending(); n != 2 {
				t.Fatalf("%d links pending, want the 2 acknowledged", n)
			}
			// The grid takes changes again: the next file makes the
			// folder's change (with /a and /b) itself.
			rs.refuse.Store(false)
			before := rs.modifies.Load()
			if err := writeFile(t, d, how, "/e", []byte("/e")); err != nil {
				t.Fatalf("write /e after the grid recovered: %v", err)
			}
			if rs.modifies.Load() == before {
				t.Fatal("write /e made no folder change")
			}
			if n := b.Pending(); n != 0 {
				t.Fatalf("%d links pending after /e's change, want 0", n)
			}
			// Written behind again.
			before = rs.modifies.Load()
			for _, n := range []string{"/f", "/g", "/h"} {
				if err := writeFile(t, d, how, n, []byte(n)); err != nil {
					t.Fatalf("write %s: %v", n, err)
				}
			}
			if n := rs.modifies.Load() - before; n != 0 {
				t.Fatalf("%d folder changes for 3 files after the grid recovered, want 0 (written behind)", n)
			}
			if n := b.Pending(); n != 3 {
				t.Fatalf("%d links pending, want 3", n)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			other := open(t, g, root)
			want := []string{"a", "b", "e", "f", "g", "h"}
			if got := names(t, other, "/"); !slices.Equal(got, want) {
				t.Fatalf("another node sees %v, want %v", got, want)
			}
			for _, n := range want {
				if got := get(t, other, "/"+n); !bytes.Equal(got, []byte("/"+n)) {
					t.Fatalf("/%s holds %q", n, got)
				}
			}
		})
	}
}

// TestWriteBehindBackpressureBound: a folder holding MaxPending links not
// yet made does not take more behind: the next file makes the folder's
// change (all of them) before it is answered, and write-behind resumes.
func TestWriteBehindBackpressureBound(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	sc := &slotCounter{Store: vdrive.GridStore(newClient(t, g))}
	const bound = 5
	b, err := vdrive.OpenBehind(sc, vdrive.BehindConfig{Dir: t.TempDir(), Delay: never, FlushAt: 100, MaxPending: bound, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := frontDrive(t, b, root)
	for i := range bound {
		putBytes(t, d, fmt.Sprintf("/f%d", i), []byte("x"))
	}
	if n := sc.modifies.Load(); n != 0 {
		t.Fatalf("%d folder changes for %d files under the bound, want 0", n, bound)
	}
	if n := b.Pending(); n != bound {
		t.Fatalf("%d links pending, want %d", n, bound)
	}
	putBytes(t, d, fmt.Sprintf("/f%d", bound), []byte("x"))
	if n := sc.modifies.Load(); n != 1 {
		t.Fatalf("%d folder changes for the file past the bound, want 1", n)
	}
	if n := b.Pending(); n != 0 {
		t.Fatalf("%d links pending after the change, want 0", n)
	}
	if got := names(t, open(t, g, root), "/"); len(got) != bound+1 {
		t.Fatalf("another node sees %v, want %d files", got, bound+1)
	}
	putBytes(t, d, "/later", []byte("x"))
	if n := b.Pending(); n != 1 || sc.modifies.Load() != 1 {
		t.Fatalf("after the change: %d pending, %d changes; want the next file written behind (1, 1)", n, sc.modifies.Load())
	}
}
