package vdrive_test

import (
	"testing"
	"time"
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
