package vdrive_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

func TestWalk(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, time.Minute)
	for _, p := range []string{"/a/b", "/a/skip/deep", "/c"} {
		if err := d.MkdirAll(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	put(t, d, "/a/b/f1", []byte("1"))
	put(t, d, "/a/f0", []byte("0"))
	put(t, d, "/a/skip/f", []byte("s"))
	// A link back to /a makes a cycle: /c/loop/... is /a again.
	ai, _ := d.Stat(ctx, "/a")
	if err := d.Link(ctx, "/c/loop", ai.WriteCap()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, root string
		skip       string
		want       string
	}{
		{"all", "/", "", "/ /a /a/b /a/b/f1 /a/f0 /a/skip /a/skip/deep /a/skip/f /c /c/loop"},
		{"skip dir", "/", "/a/skip", "/ /a /a/b /a/b/f1 /a/f0 /a/skip /c /c/loop"},
		{"sub", "/a/b", "", "/a/b /a/b/f1"},
		{"file", "/a/f0", "", "/a/f0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := d.Walk(ctx, tc.root, func(p string, info *vdrive.Info) error {
				got = append(got, p)
				if p == tc.skip {
					return fs.SkipDir
				}
				return nil
			})
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Fatalf("walk %s: %v (%v), want %s", tc.root, got, err, tc.want)
			}
		})
	}
	if err := d.Walk(ctx, "/nope", func(string, *vdrive.Info) error { return nil }); !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("walk of a missing path: %v", err)
	}
}
