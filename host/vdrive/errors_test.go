package vdrive_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

func TestErrors(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, 3*time.Minute)
	for _, p := range []string{"/dir", "/dir/sub", "/full", "/full/x", "/empty"} {
		if err := d.Mkdir(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	put(t, d, "/file", []byte("data"))
	put(t, d, "/dir/f2", []byte("data 2"))

	long := strings.Repeat("n", 2000)
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"stat missing", func() error { _, err := d.Stat(ctx, "/nope"); return err }, vdrive.ErrNotExist},
		{"stat under missing", func() error { _, err := d.Stat(ctx, "/nope/x"); return err }, vdrive.ErrNotExist},
		{"stat under file", func() error { _, err := d.Stat(ctx, "/file/x"); return err }, vdrive.ErrNotDir},
		{"readdir file", func() error { _, err := d.ReadDir(ctx, "/file"); return err }, vdrive.ErrNotDir},
		{"open dir", func() error { _, err := d.Open(ctx, "/dir"); return err }, vdrive.ErrIsDir},
		{"open root", func() error { _, err := d.Open(ctx, "/"); return err }, vdrive.ErrIsDir},
		{"create over dir", func() error { _, err := d.Create(ctx, "/dir"); return err }, vdrive.ErrIsDir},
		{"create root", func() error { _, err := d.Create(ctx, "/"); return err }, vdrive.ErrIsDir},
		{"create in missing", func() error { _, err := d.Create(ctx, "/nope/f"); return err }, vdrive.ErrNotExist},
		{"mkdir existing", func() error { return d.Mkdir(ctx, "/dir") }, vdrive.ErrExist},
		{"mkdir over file", func() error { return d.Mkdir(ctx, "/file") }, vdrive.ErrExist},
		{"mkdir root", func() error { return d.Mkdir(ctx, "/") }, vdrive.ErrExist},
		{"mkdirall through file", func() error { return d.MkdirAll(ctx, "/file/x") }, vdrive.ErrNotDir},
		{"link existing", func() error { return d.Link(ctx, "/file", "tarn:lit:") }, vdrive.ErrExist},
		{"link garbage", func() error { return d.Link(ctx, "/g", "http://example.com") }, vdrive.ErrInvalid},
		{"remove missing", func() error { return d.Remove(ctx, "/nope") }, vdrive.ErrNotExist},
		{"remove root", func() error { return d.Remove(ctx, "/") }, vdrive.ErrInvalid},
		{"remove non-empty", func() error { return d.Remove(ctx, "/dir") }, vdrive.ErrNotEmpty},
		{"rename missing", func() error { return d.Rename(ctx, "/nope", "/x") }, vdrive.ErrNotExist},
		{"rename into itself", func() error { return d.Rename(ctx, "/dir", "/dir/sub/dir") }, vdrive.ErrInvalid},
		{"rename root", func() error { return d.Rename(ctx, "/", "/x") }, vdrive.ErrInvalid},
		{"rename dir over file", func() error { return d.Rename(ctx, "/dir/sub", "/file") }, vdrive.ErrNotDir},
		{"rename file over dir", func() error { return d.Rename(ctx, "/file", "/empty") }, vdrive.ErrIsDir},
		{"rename dir over non-empty dir", func() error { return d.Rename(ctx, "/empty", "/full") }, vdrive.ErrNotEmpty},
		{"rename to missing dir", func() error { return d.Rename(ctx, "/file", "/nope/file") }, vdrive.ErrNotExist},
		{"setmetadata missing", func() error { return d.SetMetadata(ctx, "/nope", func(*vdrive.Metadata) error { return nil }) }, vdrive.ErrNotExist},
		{"setmetadata bad key", func() error {
			return d.SetMetadata(ctx, "/file", func(m *vdrive.Metadata) error { m.Extra = map[string]string{"": "x"}; return nil })
		}, vdrive.ErrInvalid},
		{"dotdot", func() error { _, err := d.Stat(ctx, "/dir/../file"); return err }, vdrive.ErrBadName},
		{"dot", func() error { _, err := d.Stat(ctx, "/./file"); return err }, vdrive.ErrBadName},
		{"double slash", func() error { _, err := d.Stat(ctx, "/dir//f2"); return err }, vdrive.ErrBadName},
		{"only slashes", func() error { _, err := d.Stat(ctx, "//"); return err }, vdrive.ErrBadName},
		{"nul", func() error { return d.Mkdir(ctx, "/a\x00b") }, vdrive.ErrBadName},
		{"bad utf8", func() error { return d.Mkdir(ctx, "/a\xffb") }, vdrive.ErrBadName},
		{"long name", func() error { return d.Mkdir(ctx, "/"+long) }, vdrive.ErrBadName},
		{"long path", func() error { _, err := d.Stat(ctx, strings.Repeat("/abc", 2000)); return err }, vdrive.ErrBadName},
		{"rename to dotdot", func() error { return d.Rename(ctx, "/file", "/..") }, vdrive.ErrBadName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not a one-line *fs.PathError", err)
			}
		})
	}
	// The io/fs and errno mappings the frontends rely on.
	for _, tc := range []struct {
		err, std error
	}{
		{vdrive.ErrReadOnly, fs.ErrPermission}, {vdrive.ErrReadOnly, syscall.EROFS},
		{vdrive.ErrBadName, fs.ErrInvalid}, {vdrive.ErrNotDir, syscall.ENOTDIR},
		{vdrive.ErrIsDir, syscall.EISDIR}, {vdrive.ErrNotEmpty, syscall.ENOTEMPTY},
	} {
		if !errors.Is(&fs.PathError{Op: "x", Path: "/y", Err: tc.err}, tc.std) {
			t.Errorf("%v does not match %v", tc.err, tc.std)
		}
	}
	// The failed operations changed nothing.
	if got := names(t, d, "/"); strings.Join(got, ",") != "dir,empty,file,full" {
		t.Fatalf("root lists %v", got)
	}
	// A dir over an empty dir is allowed and replaces it.
	if err := d.Rename(ctx, "/full/x", "/empty"); err != nil {
		t.Fatalf("rename dir over empty dir: %v", err)
	}
}

func TestCreateAbortLinksNothing(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, time.Minute)
	w, err := d.Create(ctx, "/aborted")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pseudo(2, 200<<10))
	w.Abort()
	if err := w.Close(); err == nil {
		t.Fatal("Close after Abort succeeded")
	}
	// A cancelled upload context fails Close and links nothing.
	cctx, cancel := context.WithCancel(ctx)
	w, err = d.Create(cctx, "/cancelled")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pseudo(3, 100<<10))
	cancel()
	w.Write(pseudo(4, 100<<10))
	if err := w.Close(); err == nil {
		t.Fatal("Close of a cancelled upload succeeded")
	}
	if got := names(t, d, "/"); len(got) != 0 {
		t.Fatalf("root lists %v after failed creates", got)
	}
}

func TestReadOnlyRoot(t *testing.T) {
	g := newGrid(t)
	w := newDrive(t, g)
	ctx := ctxFor(t, 2*time.Minute)
	if err := w.MkdirAll(ctx, "/d/sub"); err != nil {
		t.Fatal(err)
	}
	put(t, w, "/d/f", []byte("content of f"))
	rootInfo, _ := w.Stat(ctx, "/")
	ro := open(t, g, rootInfo.ReadCap())
	if !ro.ReadOnly() || strings.HasPrefix(ro.RootCap(), "tarn:dir:") {
		t.Fatalf("drive of a read cap: ReadOnly %v, root %s", ro.ReadOnly(), ro.RootCap())
	}
	// Reads work.
	if got := get(t, ro, "/d/f"); string(got) != "content of f" {
		t.Fatalf("read-only read %q", got)
	}
	if info, err := ro.Stat(ctx, "/d/f"); err != nil || info.Mode()&0o222 != 0 {
		t.Fatalf("read-only stat: %v %v", info, err)
	}
	// Every write fails with ErrReadOnly, whatever else is wrong.
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"mkdir", func() error { return ro.Mkdir(ctx, "/new") }},
		{"mkdir existing", func() error { return ro.Mkdir(ctx, "/d") }},
		{"mkdirall", func() error { return ro.MkdirAll(ctx, "/d/sub/x") }},
		{"create", func() error { _, err := ro.Create(ctx, "/d/new"); return err }},
		{"create replace", func() error { _, err := ro.Create(ctx, "/d/f"); return err }},
		{"remove", func() error { return ro.Remove(ctx, "/d/f") }},
		{"remove missing", func() error { return ro.Remove(ctx, "/nope") }},
		{"rename", func() error { return ro.Rename(ctx, "/d/f", "/d/g") }},
		{"rename across", func() error { return ro.Rename(ctx, "/d/f", "/f") }},
		{"setmetadata", func() error { return ro.SetMetadata(ctx, "/d/f", func(*vdrive.Metadata) error { return nil }) }},
		{"link", func() error { return ro.Link(ctx, "/l", "tarn:lit:") }},
		{"linkmany", func() error { return ro.LinkMany(ctx, "/d", map[string]string{"x": "tarn:lit:"}) }},
		{"put", func() error { return ro.Put(ctx, "/d/p", strings.NewReader("x"), 1, nil) }},
		{"removeall", func() error { return ro.RemoveAll(ctx, "/d") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if !errors.Is(err, vdrive.ErrReadOnly) || !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("got %v, want ErrReadOnly", err)
			}
		})
	}
	// Nothing changed, and no child write cap shows through the read cap.
	infos, err := ro.ReadDir(ctx, "/d")
	if err != nil || len(infos) != 2 {
		t.Fatalf("readdir: %v %v", infos, err)
	}
	for _, in := range infos {
		if in.WriteCap() != "" {
			t.Fatalf("read-only drive shows the write cap of %s", in.Name())
		}
	}
}

func TestNameNormalization(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, time.Minute)
	nfd, nfc := "Cafe\u0301 \u212b", "Caf\u00e9 \u00c5" // e + combining acute, Angstrom sign
	if err := d.Mkdir(ctx, "/"+nfd); err != nil {
		t.Fatal(err)
	}
	if got := names(t, d, "/"); len(got) != 1 || got[0] != nfc {
		t.Fatalf("root lists %q, want [%q]", got, nfc)
	}
	if err := d.Mkdir(ctx, "/"+nfc); !errors.Is(err, vdrive.ErrExist) {
		t.Fatalf("mkdir of the NFC spelling: %v, want ErrExist", err)
	}
	put(t, d, "/"+nfc+"/r\u00e9sum\u00e9", []byte("cv"))
	if got := get(t, d, "/"+nfd+"/re\u0301sume\u0301"); string(got) != "cv" {
		t.Fatalf("read through the NFD spelling: %q", got)
	}
}

func TestRenameReplacesFile(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g)
	ctx := ctxFor(t, time.Minute)
	d.Mkdir(ctx, "/a")
	put(t, d, "/a/one", []byte("one"))
	put(t, d, "/a/two", []byte("two"))
	put(t, d, "/three", []byte("three"))
	if err := d.Rename(ctx, "/a/one", "/a/two"); err != nil {
		t.Fatal(err)
	}
	if err := d.Rename(ctx, "/three", "/a/two"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, d, "/a"); strings.Join(got, ",") != "two" {
		t.Fatalf("/a lists %v", got)
	}
	if got := get(t, d, "/a/two"); string(got) != "three" {
		t.Fatalf("/a/two holds %q", got)
	}
	if got := names(t, d, "/"); strings.Join(got, ",") != "a" {
		t.Fatalf("/ lists %v", got)
	}
	// Renaming a name onto itself changes nothing.
	if err := d.Rename(ctx, "/a/two", "/a/two"); err != nil {
		t.Fatal(err)
	}
}
