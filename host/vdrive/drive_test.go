package vdrive_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

func TestEndToEnd(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, 3*time.Minute)

	if err := d.Mkdir(ctx, "/docs"); err != nil {
		t.Fatal(err)
	}
	if err := d.MkdirAll(ctx, "docs/a/b/c"); err != nil {
		t.Fatal(err)
	}
	big := pseudo(1, 300<<10)
	put(t, d, "/docs/report.pdf", big)
	put(t, d, "/docs/a/b/c/small.txt", []byte("hello"))
	put(t, d, "/empty", nil)

	if got := get(t, d, "docs/report.pdf"); !bytes.Equal(got, big) {
		t.Fatal("report.pdf read back differs")
	}
	if got := get(t, d, "/empty"); len(got) != 0 {
		t.Fatalf("empty file reads %d bytes", len(got))
	}
	// Range read in the middle of the big file.
	f, err := d.Open(ctx, "/docs/report.pdf")
	if err != nil {
		t.Fatal(err)
	}
	mid := make([]byte, 1000)
	if _, err := f.ReadAt(mid, 200_000); err != nil || !bytes.Equal(mid, big[200_000:201_000]) {
		t.Fatalf("range read: %v", err)
	}
	if got := names(t, d, "/"); !slices.Equal(got, []string{"docs", "empty"}) {
		t.Fatalf("root lists %v", got)
	}
	if got := names(t, d, "/docs"); !slices.Equal(got, []string{"a", "report.pdf"}) {
		t.Fatalf("/docs lists %v", got)
	}
	info, err := d.Stat(ctx, "/docs/report.pdf")
	if err != nil || info.IsDir() || info.Size() != int64(len(big)) || info.ModTime().IsZero() || info.Mode() != 0o644 {
		t.Fatalf("stat report.pdf: %v %v", info, err)
	}
	if c, err := cap.Parse(info.ReadCap()); err != nil || c.Kind() != cap.KindCHK || info.WriteCap() != "" {
		t.Fatalf("report.pdf caps %q %q: %v", info.ReadCap(), info.WriteCap(), err)
	}
	if info, err := d.Stat(ctx, "/docs/a"); err != nil || !info.IsDir() || info.Mode() != fs.ModeDir|0o755 ||
		!strings.HasPrefix(info.WriteCap(), "tarn:dir:") || !strings.HasPrefix(info.ReadCap(), "tarn:dir-ro:") {
		t.Fatalf("stat /docs/a: %v %v", info, err)
	}
	if root, err := d.Stat(ctx, "/"); err != nil || !root.IsDir() || root.Size() != 2 {
		t.Fatalf("stat /: %v %v", root, err)
	}

	// Replace keeps ctime and extra metadata, changes size and mtime.
	if err := d.SetMetadata(ctx, "/docs/report.pdf", func(m *vdrive.Metadata) error {
		m.Extra = map[string]string{vdrive.ModeKey: "0600", "user.tag": "x"}
		m.Size = 1 // ignored
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := d.Stat(ctx, "/docs/report.pdf")
	put(t, d, "/docs/report.pdf", []byte("version two, longer than fifty-five bytes so it is a chk file"))
	after, err := d.Stat(ctx, "/docs/report.pdf")
	if err != nil || after.Mode() != 0o600 || after.Metadata().Extra["user.tag"] != "x" ||
		!after.Metadata().Ctime.Equal(before.Metadata().Ctime) || after.Size() == before.Size() {
		t.Fatalf("after replace: %+v %v (before %+v)", after.Metadata(), err, before.Metadata())
	}

	// Rename within and across directories.
	if err := d.Rename(ctx, "/docs/report.pdf", "/docs/final.pdf"); err != nil {
		t.Fatal(err)
	}
	if err := d.Rename(ctx, "/docs/final.pdf", "/docs/a/b/final.pdf"); err != nil {
		t.Fatal(err)
	}
	if err := d.Rename(ctx, "/docs/a/b/c", "/c"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, d, "/c/small.txt"); string(got) != "hello" {
		t.Fatalf("moved directory lost its file: %q", got)
	}
	if got := names(t, d, "/docs/a/b"); !slices.Equal(got, []string{"final.pdf"}) {
		t.Fatalf("/docs/a/b lists %v", got)
	}
	if got := names(t, d, "/docs"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("/docs lists %v", got)
	}
	// The moved directory is still writable (its write cap moved with it).
	put(t, d, "/c/more", []byte("more"))

	// Link an existing cap; a read-only directory cap links read-only.
	fi, _ := d.Stat(ctx, "/c/small.txt")
	if err := d.Link(ctx, "/docs/alias.txt", fi.ReadCap()); err != nil {
		t.Fatal(err)
	}
	if got := get(t, d, "/docs/alias.txt"); string(got) != "hello" {
		t.Fatalf("linked file reads %q", got)
	}
	// A mutable file links by its write cap and reads its current content.
	mw, err := d2store(t, g).CreateMutable(ctx, []byte("mutable content"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Link(ctx, "/docs/mutable", mw.String()); err != nil {
		t.Fatal(err)
	}
	if got := get(t, d, "/docs/mutable"); string(got) != "mutable content" {
		t.Fatalf("mutable file reads %q", got)
	}
	if mi, _ := d.Stat(ctx, "/docs/mutable"); mi.WriteCap() != mw.String() || mi.ReadCap() != mw.ReadCap().String() {
		t.Fatalf("mutable file caps %q %q", mi.WriteCap(), mi.ReadCap())
	}
	ci, _ := d.Stat(ctx, "/c")
	if err := d.Link(ctx, "/c-ro", ci.ReadCap()); err != nil {
		t.Fatal(err)
	}
	if got := names(t, d, "/c-ro"); !slices.Equal(got, []string{"more", "small.txt"}) {
		t.Fatalf("/c-ro lists %v", got)
	}
	if ri, _ := d.Stat(ctx, "/c-ro"); ri.Mode() != fs.ModeDir|0o555 {
		t.Fatalf("read-only link has mode %v", ri.Mode())
	}
	if ri, _ := d.Stat(ctx, "/c-ro/small.txt"); ri.Mode() != 0o444 {
		t.Fatalf("file in a read-only link has mode %v", ri.Mode())
	}
	if err := d.Mkdir(ctx, "/c-ro/x"); !errors.Is(err, vdrive.ErrReadOnly) {
		t.Fatalf("mkdir in a read-only link: %v", err)
	}
	rc, _ := cap.Parse(ci.ReadCap())
	if err := d.Link(ctx, "/v", rc.(cap.DirRead).Verify().String()); !errors.Is(err, vdrive.ErrInvalid) {
		t.Fatalf("link of a verify cap: %v", err)
	}

	// Remove: not-empty check, then empty.
	if err := d.Remove(ctx, "/c"); !errors.Is(err, vdrive.ErrNotEmpty) || !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("remove non-empty dir: %v", err)
	}
	for _, p := range []string{"/c/more", "/c/small.txt", "/c"} {
		if err := d.Remove(ctx, p); err != nil {
			t.Fatalf("remove %s: %v", p, err)
		}
	}
	if _, err := d.Stat(ctx, "/c"); !errors.Is(err, fs.ErrNotExist) || !os.IsNotExist(err) {
		t.Fatalf("stat removed: %v", err)
	}
	// The read-only link still reaches the (now empty) directory.
	if got := names(t, d, "/c-ro"); len(got) != 0 {
		t.Fatalf("/c-ro lists %v after its entries were removed", got)
	}

	// Put with a known size and progress; RemoveAll of a full tree.
	data := pseudo(5, 150<<10)
	var seen int64
	if err := d.Put(ctx, "/docs/a/put.bin", bytes.NewReader(data), int64(len(data)), func(n int64) { seen = n }); err != nil {
		t.Fatal(err)
	}
	if got := get(t, d, "/docs/a/put.bin"); !bytes.Equal(got, data) || seen != int64(len(data)) {
		t.Fatalf("put read back %d bytes (progress %d), want %d", len(got), seen, len(data))
	}
	if info, _ := d.Stat(ctx, "/docs/a/put.bin"); info.Size() != int64(len(data)) {
		t.Fatalf("put size %d", info.Size())
	}
	if err := d.Put(ctx, "/docs/a", bytes.NewReader(data), int64(len(data)), nil); !errors.Is(err, vdrive.ErrIsDir) {
		t.Fatalf("put over a directory: %v", err)
	}
	if err := d.RemoveAll(ctx, "/docs"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveAll(ctx, "/docs/a/b"); err != nil {
		t.Fatalf("RemoveAll of a missing path: %v", err)
	}
	if got := names(t, d, "/"); strings.Join(got, ",") != "c-ro,empty" {
		t.Fatalf("root lists %v after RemoveAll", got)
	}
}

// TestDirCache: with WithDirCache a drive sees its own changes at once,
// may list another client's state as of its last read, and still loses
// nothing when it writes on top of it.
func TestDirCache(t *testing.T) {
	g := newGrid(t)
	a := newDrive(t, g, vdrive.WithDirCache(time.Hour))
	b := open(t, g, a.RootCap(), vdrive.WithDirCache(time.Hour))
	ctx := ctxFor(t, time.Minute)
	if err := a.Mkdir(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, a, "/d"); len(got) != 0 {
		t.Fatalf("a lists %v", got)
	}
	if got := names(t, b, "/d"); len(got) != 0 { // b caches /d now
		t.Fatalf("b lists %v", got)
	}
	put(t, a, "/d/from-a", []byte("a"))
	if got := names(t, a, "/d"); strings.Join(got, ",") != "from-a" {
		t.Fatalf("a does not see its own change: %v", got)
	}
	if got := names(t, b, "/d"); len(got) != 0 {
		t.Fatalf("b's cached listing changed without a read: %v", got)
	}
	put(t, b, "/d/from-b", []byte("b"))
	if got := names(t, b, "/d"); strings.Join(got, ",") != "from-a,from-b" {
		t.Fatalf("b after its write lists %v, want both", got)
	}
	c := open(t, g, a.RootCap())
	if got := names(t, c, "/d"); strings.Join(got, ",") != "from-a,from-b" {
		t.Fatalf("a fresh client lists %v", got)
	}
	// A name b's cached root lacks is looked up again, not reported missing.
	if err := a.Mkdir(ctx, "/new"); err != nil {
		t.Fatal(err)
	}
	if info, err := b.Stat(ctx, "/new"); err != nil || !info.IsDir() {
		t.Fatalf("b stat of a's new directory: %v", err)
	}
	// A stale "it exists" does not refuse a Mkdir after another client's Remove.
	if err := a.Remove(ctx, "/new"); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir(ctx, "/new"); err != nil {
		t.Fatalf("b mkdir after a's remove: %v", err)
	}
	// Nor does a stale "it is empty" let a non-empty directory go.
	put(t, a, "/new/f", []byte("f"))
	if err := b.Remove(ctx, "/new"); !errors.Is(err, vdrive.ErrNotEmpty) {
		t.Fatalf("b removed a directory a had filled: %v", err)
	}
}

// d2store is a Store of its own client on g.
func d2store(t *testing.T, g *testgrid.Grid) vdrive.Store { return vdrive.GridStore(newClient(t, g)) }
