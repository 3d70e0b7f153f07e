//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/aliases"
	"github.com/tarnfs/tarn/host/vdrive"
)

// homeNode is checkNode's client with a new root directory, aliased
// "home", and a drive on that root to make a tree with.
func homeNode(t *testing.T) (dir string, d *vdrive.Drive) {
	t.Helper()
	dir, _, gc := checkNode(t)
	st := vdrive.GridStore(gc)
	root, err := vdrive.NewRoot(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if d, err = vdrive.New(st, root.String()); err != nil {
		t.Fatal(err)
	}
	if err := aliases.Add(aliases.File(dir), "home", root.String()); err != nil {
		t.Fatal(err)
	}
	return dir, d
}

// TestDirectoryLoops: a directory holding a link to a folder above it
// (tarn ln of an ancestor's cap makes one) no longer sends tarn tree and
// tarn cp -r round it until killed: tree marks the link and goes on, cp -r
// refuses before copying anything, naming the link and the folder it
// repeats. A folder linked twice but not above itself is still walked and
// copied. tarn get into an existing folder says so before downloading.
func TestDirectoryLoops(t *testing.T) {
	bin := buildTarn(t)
	dir, d := homeNode(t)
	ctx := context.Background()
	for _, p := range []string{"/a/b", "/c", "/e"} {
		if err := d.MkdirAll(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/a/b/f.txt", "/e/g.txt"} {
		if err := d.Put(ctx, p, strings.NewReader("hello"), 5, nil); err != nil {
			t.Fatal(err)
		}
	}
	a, err := d.Stat(ctx, "/a")
	if err != nil {
		t.Fatal(err)
	}
	e, err := d.Stat(ctx, "/e")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Link(ctx, "/a/b/up", a.WriteCap()); err != nil { // a/b/up is a: a loop
		t.Fatal(err)
	}
	if err := d.Link(ctx, "/c/e2", e.WriteCap()); err != nil { // e twice, not a loop
		t.Fatal(err)
	}
	const limit = 2 * time.Minute

	t.Run("tree", func(t *testing.T) {
		r := runFor(t, limit, bin, "tree", "--node", dir, "home:")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{
			"│       └── up/ (a loop: the same directory as one above it)\n",
			"│   └── e2/\n│       └── g.txt\n", // c/e2 is walked: e is not above it
			"\n6 directories, 3 files\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("tree lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("tree below the loop's target", func(t *testing.T) {
		r := runFor(t, limit, bin, "tree", "--node", dir, "home:a/b")
		if r.code != 0 || !strings.Contains(r.stdout, "└── up/\n") || !strings.Contains(r.stdout, "    └── b/ (a loop: the same directory as one above it)\n") {
			t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	for _, tc := range []struct{ name, src, want string }{
		{"cp -r of the loop's folder", "home:a", "tarn: cp: home:a/b/up is a loop: the same directory as home:a above it"},
		{"cp -r of the root", "home:", "tarn: cp: home:a/b/up is a loop: the same directory as home:a above it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			r := runFor(t, limit, bin, "cp", "-r", "-q", "--node", dir, tc.src, out)
			if r.code != 1 || !strings.HasPrefix(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line starting %q", r.code, r.stderr, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("cp -r refused, yet made %s: %v", out, err)
			}
		})
	}
	t.Run("cp -r of a folder linked twice", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		r := runFor(t, limit, bin, "cp", "-r", "-q", "--node", dir, "home:c", out)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got, err := os.ReadFile(filepath.Join(out, "e2", "g.txt")); err != nil || string(got) != "hello" {
			t.Fatalf("c/e2/g.txt: %q, %v", got, err)
		}
	})
	t.Run("get into a folder", func(t *testing.T) {
		folder := t.TempDir()
		r := runFor(t, limit, bin, "get", "-q", "--node", dir, "tarn:lit:nbswy3dp", folder)
		want := "tarn: get: " + folder + " is a folder: name the file to write (tarn get CAP " + filepath.Join(folder, "NAME") + ")\n"
		if r.code != 1 || r.stderr != want {
			t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
		}
	})
}
