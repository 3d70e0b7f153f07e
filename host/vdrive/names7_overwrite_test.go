package vdrive_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

// names7Drives is a fresh root on g, a drive on it through one client
// (d), and a drive on it through a write-behind over another client (wb)
// that makes links only when asked (b.Flush) or when an operation needs
// them; dir is the write-behind's folder. Closed at cleanup.
type names7Drives struct {
	root  string
	d, wb *vdrive.Drive
	b     *vdrive.Behind
	dir   string
}

func names7Setup(t *testing.T, g *testgrid.Grid) names7Drives {
	t.Helper()
	st := vdrive.GridStore(newClient(t, g))
	rw, err := vdrive.NewRoot(ctxFor(t, time.Minute), st)
	if err != nil {
		t.Fatal(err)
	}
	n := names7Drives{root: rw.String(), dir: t.TempDir()}
	if n.d, err = vdrive.New(st, n.root); err != nil {
		t.Fatal(err)
	}
	n.b, err = vdrive.OpenBehind(vdrive.GridStore(newClient(t, g)), vdrive.BehindConfig{Dir: n.dir, Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.b.Close() })
	if n.wb, err = vdrive.New(n.b, n.root, vdrive.WithDirCache(time.Second), vdrive.WithWriteBehind()); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOverlongNameOverwrite: a file whose name is over 255 bytes (600,
// written past vdrive as an older version could) has its content replaced
// in place by every way of writing a file: Put, PutLinked, Create, through
// a write-behind drive (linked later, metadata set while pending), and by
// renaming another file over it (an editor's safe save). The old ctime
// and extra keys stay (but for a rename, which moves the other file's),
// the name stays one entry, and another drive reads the new bytes. The
// same way of writing still refuses a NEW over-long name with
// ErrNameTooLong, making nothing.
func TestOverlongNameOverwrite(t *testing.T) {
	g := newGrid(t)
	n := names7Setup(t, g)
	root, d, b, wb := n.root, n.d, n.b, n.wb
	ctx := ctxFor(t, 4*time.Minute)
	ctime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	newMtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

	create := func(d *vdrive.Drive) func(p string, data []byte) error {
		return func(p string, data []byte) error {
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
	}
	putLinked := func(d *vdrive.Drive) func(p string, data []byte) error {
		return func(p string, data []byte) error {
			l, err := d.PutLinked(ctx, p, bytes.NewReader(data), int64(len(data)), nil)
			if err == nil && !l.Replaced {
				return fmt.Errorf("linked as a new name, not Replaced")
			}
			return err
		}
	}
	renameOver := func(d *vdrive.Drive) func(p string, data []byte) error {
		return func(p string, data []byte) error {
			tmp := "/.tmp-" + fmt.Sprint(len(p), data[0])
			if err := d.Put(ctx, tmp, bytes.NewReader(data), int64(len(data)), nil); err != nil {
				return err
			}
			if err := d.Rename(ctx, tmp, p); err != nil {
				if _, serr := d.Stat(ctx, tmp); serr != nil {
					return fmt.Errorf("%w (and the source: %v)", err, serr)
				}
				return err
			}
			return nil
		}
	}
	ways := []struct {
		name  string
		write func(p string, data []byte) error
		// nfd writes by the name's decomposed spelling.
		nfd bool
		// setMeta sets the mtime after the write, before the flush.
		setMeta *vdrive.Drive
		// moved: the entry is another file's (rename), its ctime and keys.
		moved bool
	}{
		{name: "put", write: func(p string, data []byte) error {
			return d.Put(ctx, p, bytes.NewReader(data), int64(len(data)), nil)
		}},
		{name: "putlinked", write: putLinked(d)},
		{name: "putlinked by nfd spelling", write: putLinked(d), nfd: true},
		{name: "create", write: create(d)},
		{name: "setmetadata after", write: create(d), setMeta: d},
		{name: "write-behind putlinked", write: putLinked(wb), setMeta: wb},
		{name: "write-behind create", write: create(wb)},
		{name: "rename over", write: renameOver(d), moved: true},
		{name: "write-behind rename over", write: renameOver(wb), moved: true},
	}
	for i, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			name := fmt.Sprintf("%02d", i) + strings.Repeat("é", 299) // 600 bytes in NFC
			if err := vdrive.SetRaw(ctx, d, "/", name, litCap("old"), "", vdrive.Metadata{Type: vdrive.TypeFile, Size: 3,
				Ctime: ctime, Mtime: ctime, Extra: map[string]string{vdrive.ModeKey: "0600"}}); err != nil {
				t.Fatal(err)
			}
			p := "/" + name
			if w.nfd {
				p = "/" + fmt.Sprintf("%02d", i) + strings.Repeat("e\u0301", 299)
			}
			data := pseudo(byte(i), 1000+i)
			if err := w.write(p, data); err != nil {
				t.Fatalf("overwrite the %d-byte name: %v", len(name), err)
			}
			if w.setMeta != nil {
				if err := w.setMeta.SetMetadata(ctx, p, func(m *vdrive.Metadata) error { m.Mtime = newMtime; return nil }); err != nil {
					t.Fatalf("setmetadata: %v", err)
				}
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			// Another client, nothing cached.
			d2 := open(t, g, root)
			if got := get(t, d2, "/"+name); !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes back, not the %d written", len(got), len(data))
			}
			info, err := d2.Stat(ctx, "/"+name)
			if err != nil {
				t.Fatal(err)
			}
			m := info.Metadata()
			if !w.moved && (!m.Ctime.Equal(ctime) || m.Extra[vdrive.ModeKey] != "0600") {
				t.Fatalf("ctime %v, extra %v: not the old file's", m.Ctime, m.Extra)
			}
			if w.setMeta != nil && !m.Mtime.Equal(newMtime) {
				t.Fatalf("mtime %v, want %v", m.Mtime, newMtime)
			}
			if m.Size != int64(len(data)) {
				t.Fatalf("size %d, want %d", m.Size, len(data))
			}
			n := 0
			for _, s := range names(t, d2, "/") {
				if strings.HasPrefix(s, fmt.Sprintf("%02d", i)) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d entries of the name", n)
			}

			// A new over-long name, the same way: refused, nothing made.
			fresh := "/" + fmt.Sprintf("%02dnew", i) + strings.Repeat("é", 299)
			err = w.write(fresh, data)
			if !errors.Is(err, vdrive.ErrNameTooLong) || !errors.Is(err, vdrive.ErrBadName) {
				t.Fatalf("a new %d-byte name: %v, want ErrNameTooLong", len(fresh)-1, err)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if _, err := open(t, g, root).Stat(ctx, fresh); !errors.Is(err, vdrive.ErrNotExist) {
				t.Fatalf("refused, yet stat: %v", err)
			}
		})
	}
	if n := b.Pending(); n != 0 {
		t.Fatalf("%d links pending after the flushes", n)
	}
}

// TestOverlongNameGoneBeforeLink: a file written over an over-long name
// through a write-behind drive, whose entry another node removes before
// the link is made, is not linked as a new over-long name (the rule holds
// in the folder change itself, not only in the checks before): the link
// goes to the failed links with the name-too-long reason, and the name
// stays gone. CheckWritePath says what a frontend's early check needs:
// the existing over-long name passes, a new one does not.
func TestOverlongNameGoneBeforeLink(t *testing.T) {
	g := newGrid(t)
	n := names7Setup(t, g)
	root, d, b, wb, dir := n.root, n.d, n.b, n.wb, n.dir
	ctx := ctxFor(t, 3*time.Minute)
	name := strings.Repeat("g", 400)
	if err := vdrive.SetRaw(ctx, d, "/", name, litCap("old"), "", vdrive.Metadata{Type: vdrive.TypeFile, Size: 3}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    string
		want error
	}{
		{"/" + name, nil},
		{"/" + name + "x", vdrive.ErrNameTooLong},
		{"/short", nil},
	} {
		if err := d.CheckWritePath(ctx, tc.p); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckWritePath(%d bytes) = %v, want %v", len(tc.p), err, tc.want)
		}
	}
	data := pseudo(7, 2000)
	if _, err := wb.PutLinked(ctx, "/"+name, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if b.Pending() != 1 {
		t.Fatalf("%d links pending, want the overwrite's", b.Pending())
	}
	if err := d.Remove(ctx, "/"+name); err != nil {
		t.Fatalf("remove by the other node: %v", err)
	}
	b.Flush(ctx) // its error is the failed link's; checked below
	fl, err := vdrive.ReadFailedLinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fl) != 1 || fl[0].Name != name || !strings.Contains(fl[0].Error, "name too long") {
		t.Fatalf("failed links %+v, want the overwrite's, name too long", fl)
	}
	if _, err := open(t, g, root).Stat(ctx, "/"+name); !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("the removed over-long name came back: %v", err)
	}
	if n := b.Pending(); n != 0 {
		t.Fatalf("%d links pending", n)
	}
}
