//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

func newDisk(t *testing.T, dir string) *Disk { return newDiskOpts(t, dir, Options{}) }

func newDiskOpts(t *testing.T, dir string, opts Options) *Disk {
	t.Helper()
	d, err := NewOptions(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestConformance runs the backend suite with small shares packed (the
// default) and with every share in a file of its own.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newDisk(t, t.TempDir()) })
}

func TestConformanceNoPack(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newDiskOpts(t, t.TempDir(), Options{NoPack: true})
	})
}

// TestReopen: shares, slots and slot tokens survive closing and reopening
// the folder, and tokens keep moving on.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d := newDisk(t, dir)
	r := storage.Ref{Index: [16]byte{0xab, 1}, Num: 7}
	w, err := d.Create(ctx, r, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := d.WriteSlot(ctx, r, "", []byte("slot"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	d2 := newDisk(t, dir)
	buf := make([]byte, 5)
	if n, err := d2.ReadAt(ctx, r, buf, 0); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("share after reopen: %q, %v", buf[:n], err)
	}
	v, tok2, err := d2.ReadSlot(ctx, r)
	if err != nil || string(v) != "slot" || tok2 != tok {
		t.Fatalf("slot after reopen: %q %q %v; want slot %q", v, tok2, err, tok)
	}
	tok3, err := d2.WriteSlot(ctx, r, tok, []byte("next"))
	if err != nil || tok3 == tok {
		t.Fatalf("write after reopen: token %q (old %q), %v", tok3, tok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "shares", "ab", "ab01"+strings.Repeat("0", 28), "7")); err != nil {
		t.Fatalf("share not at its documented path: %v", err)
	}
}

// TestStartCleans: files a crash left in tmp/ are removed at start, and
// stray names in the share folders are never taken for shares.
func TestStartCleans(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d := newDisk(t, dir)
	r := storage.Ref{Index: [16]byte{0x12}, Num: 1}
	w, err := d.Create(ctx, r, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, []byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	// A writer left open, as when the process is killed.
	if _, err := d.Create(ctx, storage.Ref{Index: r.Index, Num: 2}, 10); err != nil {
		t.Fatal(err)
	}
	d.Close()
	idxDir := filepath.Join(dir, "shares", "12", "12"+strings.Repeat("0", 30))
	for _, junk := range []string{"01", "x", "2.tmp", "4294967296", "-1"} {
		if err := os.WriteFile(filepath.Join(idxDir, junk), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "shares", "12", "not-hex"), 0o700); err != nil {
		t.Fatal(err)
	}

	d2 := newDisk(t, dir)
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(ents) != 0 {
		t.Fatalf("tmp/ after start holds %d entries (%v)", len(ents), err)
	}
	nums, err := d2.List(ctx, r.Index)
	if err != nil || len(nums) != 1 || nums[0] != 1 {
		t.Fatalf("list = %v, %v; want [1]", nums, err)
	}
	var idxs int
	if err := d2.Indexes(ctx, func([16]byte) error { idxs++; return nil }); err != nil || idxs != 1 {
		t.Fatalf("indexes: %d, %v; want 1", idxs, err)
	}
}

func TestFolderLocked(t *testing.T) {
	dir := t.TempDir()
	newDisk(t, dir)
	if d, err := New(dir); err == nil {
		d.Close()
		t.Fatal("a second backend opened a folder in use")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not say the folder is in use", err)
	}
}

func TestCorruptSlot(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d := newDisk(t, dir)
	r := storage.Ref{Index: [16]byte{0x34}, Num: 0}
	if _, err := d.WriteSlot(ctx, r, "", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "slots", "34", "34"+strings.Repeat("0", 30), "0")
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.ReadSlot(ctx, r); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("corrupt slot read gave %v, want a corruption error", err)
	}
	if _, err := d.WriteSlot(ctx, r, "1", []byte("w")); err == nil {
		t.Fatal("a write over a corrupt slot succeeded")
	}
}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want: path, or "error: <substring>"
	}{
		{"ok", `{"path":"/srv/tarn"}`, "/srv/tarn"},
		{"missing path", `{}`, `error: "path" is required`},
		{"empty path", `{"path":""}`, `error: "path" is required`},
		{"unknown key", `{"path":"/x","sync":false}`, "error: unknown field"},
		{"not json", `path=/x`, "error: invalid character"},
		{"wrong type", `{"path":3}`, "error: cannot unmarshal"},
		{"trailing", `{"path":"/x"} {}`, "error: trailing data"},
		{"empty", ``, "error: EOF"},
		{"pack on", `{"path":"/x","pack":true}`, "/x"},
		{"pack off", `{"path":"/x","pack":false}`, "/x nopack"},
		{"pack not bool", `{"path":"/x","pack":"no"}`, "error: cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings([]byte(tc.in))
			if sub, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), sub) {
					t.Fatalf("error %v, want one containing %q", err, sub)
				}
				return
			}
			path, nopack := strings.CutSuffix(tc.want, " nopack")
			if err != nil || s.Path != path || s.Options().NoPack != nopack {
				t.Fatalf("got %+v (options %+v), %v; want path %q, no pack %v", s, s.Options(), err, path, nopack)
			}
		})
	}
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte(`{"path":"/srv/tarn"}`))
	f.Add([]byte(`{"path":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSettings(b)
		if err == nil && s.Path == "" {
			t.Fatal("accepted settings without a path")
		}
	})
}

func FuzzParseSlot(f *testing.F) {
	f.Add([]byte(slotMagic + "\x00\x00\x00\x00\x00\x00\x00\x01value"))
	f.Add([]byte("TARNSLT1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		gen, v, err := parseSlot(b)
		if err != nil {
			return
		}
		if gen == 0 || len(v) != len(b)-slotHeaderLen || !bytes.Equal(v, b[slotHeaderLen:]) {
			t.Fatalf("parseSlot(%q) = %d, %q", b, gen, v)
		}
	})
}

// FuzzParseNames: a folder entry is taken for a share or an index only if
// it is exactly the name this package would have made for it.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"0", "7", "01", "4294967295", "4294967296", "-1", "+1", "ab01" + strings.Repeat("0", 28), "AB01000000000000000000000000000000", "../etc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if n, ok := parseNum(name); ok && name != strconvU(n) {
			t.Fatalf("parseNum(%q) accepted a non-canonical name", name)
		}
		if idx, ok := parseIndex(name); ok && indexName(idx) != name {
			t.Fatalf("parseIndex(%q) accepted a non-canonical name", name)
		}
	})
}

// TestPutByRename runs the conformance suite with Put on its fallback for
// systems without O_TMPFILE: a temp file in tmp/ renamed into place.
func TestPutByRename(t *testing.T) {
	useTmpfile = false
	t.Cleanup(func() { useTmpfile = true })
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newDiskOpts(t, t.TempDir(), Options{NoPack: true})
	})
}

// TestPutLeavesNoTemp: a share put, a put refused as existing and one
// refused for space leave no file in tmp/ and nothing but the share in
// its folder.
func TestPutLeavesNoTemp(t *testing.T) {
	for _, tmpfile := range []bool{true, false} {
		t.Run(fmt.Sprintf("tmpfile=%v", tmpfile), func(t *testing.T) {
			useTmpfile = tmpfile
			t.Cleanup(func() { useTmpfile = true })
			d := newDiskOpts(t, t.TempDir(), Options{NoPack: true})
			ctx := context.Background()
			ref := storage.Ref{Index: [16]byte{9, 9}, Num: 3}
			if err := d.Put(ctx, ref, []byte("share bytes")); err != nil {
				t.Fatal(err)
			}
			if err := d.Put(ctx, ref, []byte("other bytes")); !errors.Is(err, storage.ErrExists) {
				t.Fatalf("second put: %v, want ErrExists", err)
			}
			if err := d.Put(ctx, storage.Ref{Index: [16]byte{9, 9}, Num: 4}, nil); err != nil {
				t.Fatalf("empty put: %v", err)
			}
			tmp, _ := os.ReadDir(filepath.Join(d.Dir(), "tmp"))
			if len(tmp) != 0 {
				t.Fatalf("%d files left in tmp/", len(tmp))
			}
			ents, _ := os.ReadDir(filepath.Dir(d.sharePath(ref)))
			if len(ents) != 2 {
				t.Fatalf("share folder holds %d entries, want 2", len(ents))
			}
		})
	}
}
