package vdrive_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestNewNameLimit: every operation that makes a name refuses one of more
// than 255 bytes (UTF-8, after NFC) with ErrNameTooLong (also ErrBadName,
// fs.ErrInvalid, ENAMETOOLONG) and makes nothing, and accepts 255 bytes;
// bytes are counted, not runes, and an NFD name is counted as its NFC.
func TestNewNameLimit(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, 5*time.Minute)

	names := []struct {
		label string
		in    string // as given
		nfc   string // as stored
		ok    bool
	}{
		{"ascii 255", strings.Repeat("a", 255), strings.Repeat("a", 255), true},
		{"ascii 256", strings.Repeat("a", 256), "", false},
		{"85 three-byte runes", strings.Repeat("€", 85), strings.Repeat("€", 85), true}, // 255 bytes
		{"86 three-byte runes", strings.Repeat("€", 86), "", false},                     // 258 bytes, 86 runes
		{"nfd 382 nfc 255", strings.Repeat("e\u0301", 127) + "a", strings.Repeat("\u00e9", 127) + "a", true},
		{"nfd 384 nfc 256", strings.Repeat("e\u0301", 128), "", false},
	}
	put := func(p string) error { return d.Put(ctx, p, strings.NewReader("x"), 1, nil) }
	ops := []struct {
		op string
		// setup, if set, runs before make (not subject to the limit).
		setup func(dir, label string) error
		make  func(dir, label, name string) error
		// made is where the name lands, when not dir/name.
		made func(dir, name string) string
	}{
		{op: "create", make: func(dir, _, name string) error {
			w, err := d.Create(ctx, dir+"/"+name)
			if err != nil {
				return err
			}
			w.Write([]byte("x"))
			return w.Close()
		}},
		{op: "put", make: func(dir, _, name string) error { return put(dir + "/" + name) }},
		{op: "putlinked", make: func(dir, _, name string) error {
			_, err := d.PutLinked(ctx, dir+"/"+name, strings.NewReader("x"), 1, nil)
			return err
		}},
		{op: "mkdir", make: func(dir, _, name string) error { return d.Mkdir(ctx, dir+"/"+name) }},
		{op: "mkdirall", make: func(dir, _, name string) error { return d.MkdirAll(ctx, dir+"/"+name+"/sub") }},
		{op: "rename", setup: func(dir, label string) error { return put(dir + "/src " + label) },
			make: func(dir, label, name string) error { return d.Rename(ctx, dir+"/src "+label, dir+"/"+name) }},
		{op: "rename dir across", setup: func(dir, label string) error { return d.MkdirAll(ctx, dir+"/from/"+label) },
			make: func(dir, label, name string) error { return d.Rename(ctx, dir+"/from/"+label, dir+"/"+name) }},
		{op: "link", make: func(dir, _, name string) error { return d.Link(ctx, dir+"/"+name, litCap("x")) }},
		{op: "linkmany", make: func(dir, _, name string) error {
			return d.LinkMany(ctx, dir, map[string]string{name: litCap("x"), "short": litCap("y")})
		}},
	}
	for i, o := range ops {
		dir := fmt.Sprintf("/op%d", i)
		if err := d.Mkdir(ctx, dir); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			t.Run(o.op+"/"+n.label, func(t *testing.T) {
				if o.setup != nil {
					if err := o.setup(dir, n.label); err != nil {
						t.Fatalf("setup: %v", err)
					}
				}
				err := o.make(dir, n.label, n.in)
				if n.ok {
					if err != nil {
						t.Fatalf("%d-byte name refused: %v", len(n.nfc), err)
					}
					if _, err := d.Stat(ctx, dir+"/"+n.nfc); err != nil {
						t.Fatalf("made, but stat: %v", err)
					}
					return
				}
				for _, want := range []error{vdrive.ErrNameTooLong, vdrive.ErrBadName, fs.ErrInvalid, syscall.ENAMETOOLONG} {
					if !errors.Is(err, want) {
						t.Fatalf("error %v does not match %v", err, want)
					}
				}
				var tl *vdrive.NameTooLongError
				if !errors.As(err, &tl) || tl.Len <= vdrive.MaxNewNameLen {
					t.Fatalf("error %v: no *NameTooLongError with the length", err)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%d bytes", tl.Len)) || !strings.Contains(msg, "255") {
					t.Fatalf("message %q names neither the length nor the limit", msg)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("message of more than one line: %q", err)
				}
				if _, err := d.Stat(ctx, dir+"/"+n.in); !errors.Is(err, vdrive.ErrNotExist) {
					t.Fatalf("refused, yet stat: %v", err)
				}
				if o.setup != nil && strings.HasPrefix(o.op, "rename") {
					src := dir + "/src " + n.label
					if o.op == "rename dir across" {
						src = dir + "/from/" + n.label
					}
					if _, err := d.Stat(ctx, src); err != nil {
						t.Fatalf("the source of a refused rename: %v", err)
					}
				}
			})
		}
	}
	// LinkMany is all or none: a batch with one over-long name links none.
	if err := d.Mkdir(ctx, "/batch"); err != nil {
		t.Fatal(err)
	}
	err := d.LinkMany(ctx, "/batch", map[string]string{strings.Repeat("b", 300): litCap("x"), "ok": litCap("y")})
	if !errors.Is(err, vdrive.ErrNameTooLong) {
		t.Fatalf("linkmany with a 300-byte name: %v", err)
	}
	if _, err := d.Stat(ctx, "/batch/ok"); !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("linkmany refused, yet its other name: %v", err)
	}
}

// TestOldOverlongNames: entries of 600-byte names, written past vdrive (as
// older versions did, up to dirnode.MaxNameLen), stay listable, readable,
// writable into (a folder), removable and renamable to a shorter name, but
// not to another over-long one.
func TestOldOverlongNames(t *testing.T) {
	g := newGrid(t)
	st := vdrive.GridStore(newClient(t, g))
	ctx := ctxFor(t, 3*time.Minute)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, err := vdrive.New(st, root.String())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	longFile, longDir := strings.Repeat("f", 600), strings.Repeat("d", 300)+strings.Repeat("é", 150)
	if len(longDir) != 600 {
		t.Fatalf("longDir is %d bytes", len(longDir))
	}
	if err := vdrive.SetRaw(ctx, d, "/", longFile, litCap("old content"), "", vdrive.Metadata{Type: vdrive.TypeFile, Size: 11, Ctime: now, Mtime: now}); err != nil {
		t.Fatal(err)
	}
	sub, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := vdrive.SetRaw(ctx, d, "/", longDir, sub.ReadCap().String(), sub.String(), vdrive.Metadata{Type: vdrive.TypeDir, Ctime: now, Mtime: now}); err != nil {
		t.Fatal(err)
	}

	// Listed and readable, through a drive that never saw them made.
	d2 := open(t, g, root.String())
	got := names(t, d2, "/")
	if len(got) != 2 || len(got[0]) != 600 || len(got[1]) != 600 {
		t.Fatalf("root lists %d names: %v", len(got), got)
	}
	if b := get(t, d2, "/"+longFile); string(b) != "old content" {
		t.Fatalf("read %q", b)
	}
	// The old folder takes new (short) names, and MkdirAll goes through it.
	if err := d2.Put(ctx, "/"+longDir+"/new", strings.NewReader("n"), 1, nil); err != nil {
		t.Fatalf("put into the old folder: %v", err)
	}
	if err := d2.MkdirAll(ctx, "/"+longDir+"/a/b"); err != nil {
		t.Fatalf("mkdirall through the old folder: %v", err)
	}
	if err := d2.SetMetadata(ctx, "/"+longFile, func(m *vdrive.Metadata) error { m.Mtime = now.Add(time.Hour); return nil }); err != nil {
		t.Fatalf("setmetadata of the old file: %v", err)
	}
	// No new over-long name from them.
	if err := d2.Rename(ctx, "/"+longFile, "/"+longFile+"2"); !errors.Is(err, vdrive.ErrNameTooLong) {
		t.Fatalf("rename to another 601-byte name: %v", err)
	}
	if err := d2.Mkdir(ctx, "/"+longDir+"/"+strings.Repeat("x", 256)); !errors.Is(err, vdrive.ErrNameTooLong) {
		t.Fatalf("mkdir of a 256-byte name in the old folder: %v", err)
	}
	// Renamed to a short name, content kept.
	if err := d2.Rename(ctx, "/"+longFile, "/short"); err != nil {
		t.Fatalf("rename to a short name: %v", err)
	}
	if b := get(t, d2, "/short"); string(b) != "old content" {
		t.Fatalf("read after rename %q", b)
	}
	// Removed, with what it holds.
	if err := d2.RemoveAll(ctx, "/"+longDir); err != nil {
		t.Fatalf("remove the old folder: %v", err)
	}
	if got := names(t, d2, "/"); len(got) != 1 || got[0] != "short" {
		t.Fatalf("root lists %v", got)
	}
}

// TestCheckNewPath: the check frontends may run before a request's body.
func TestCheckNewPath(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want error
	}{
		{"/", nil},
		{"/a/" + strings.Repeat("x", 255), nil},
		{"/" + strings.Repeat("x", 300) + "/short", nil}, // only the last name is new
		{"/a/" + strings.Repeat("x", 256), vdrive.ErrNameTooLong},
		{"/a/" + strings.Repeat("x", 1025), vdrive.ErrBadName},
		{"/a/../b", vdrive.ErrBadName},
	} {
		if err := vdrive.CheckNewPath(tc.p); (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("CheckNewPath(%.20q... %d bytes) = %v, want %v", tc.p, len(tc.p), err, tc.want)
		}
	}
}
