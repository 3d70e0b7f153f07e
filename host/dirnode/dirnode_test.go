package dirnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/tagged"
)

// memChunks is the format's own chunk store for unit tests: content
// addressed like the grid's convergent caps. vdrive's tests run the same
// code over a real test grid.
type memChunks struct {
	mu   sync.Mutex
	m    map[string][]byte
	puts int
	gets int
}

func newMemChunks() *memChunks { return &memChunks{m: map[string][]byte{}} }

func (c *memChunks) Put(_ context.Context, data []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := tagged.Hash("test chunk", data)
	ref := fmt.Sprintf("tarn:test:%x", s[:])
	c.m[ref] = append([]byte(nil), data...)
	c.puts++
	return ref, nil
}

func (c *memChunks) Get(_ context.Context, ref string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	d, ok := c.m[ref]
	if !ok {
		return nil, errors.New("no such chunk")
	}
	return d, nil
}

const (
	testRead  = "tarn:dir-read:testreadcap"
	testWrite = "tarn:dir:testwritecap"
)

func TestCleanName(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		bad            bool
	}{
		{name: "plain", in: "report.pdf", want: "report.pdf"},
		{name: "nfd becomes nfc", in: "Cafe\u0301", want: "Caf\u00e9"},
		{name: "nfc kept", in: "Caf\u00e9", want: "Caf\u00e9"},
		{name: "spaces and dots", in: " .hidden. ", want: " .hidden. "},
		{name: "empty", in: "", bad: true},
		{name: "dot", in: ".", bad: true},
		{name: "dotdot", in: "..", bad: true},
		{name: "slash", in: "a/b", bad: true},
		{name: "nul", in: "a\x00b", bad: true},
		{name: "bad utf8", in: "a\xffb", bad: true},
		{name: "too long", in: strings.Repeat("x", MaxNameLen+1), bad: true},
		{name: "longest", in: strings.Repeat("x", MaxNameLen), want: strings.Repeat("x", MaxNameLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CleanName(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadName) {
					t.Fatalf("CleanName(%q) = %q, %v; want ErrBadName", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func edit(t *testing.T, root []byte, k Keys, c Chunks, l Limits, fn func(*Tx) error) []byte {
	t.Helper()
	out, err := Edit(context.Background(), root, k, c, nil, l, fn)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func childCaps(i int) (string, string) {
	return fmt.Sprintf("tarn:dir-read:child%06d", i), fmt.Sprintf("tarn:dir:childwrite%06d", i)
}

func TestEditSplitMergeAndLookup(t *testing.T) {
	ctx := context.Background()
	k := NewKeys([]byte(testRead), []byte(testWrite))
	c := newMemChunks()
	lim := Limits{MaxBucket: 4 << 10, InlineMax: 1 << 10, RootInline: 2 << 10}
	const n = 2000
	now := time.Unix(1700000000, 123).UTC()
	root := edit(t, EmptyRoot(), k, c, lim, func(tx *Tx) error {
		for i := 0; i < n; i++ {
			rc, wc := childCaps(i)
			if err := tx.Set(fmt.Sprintf("n%05d", i), rc, wc, Metadata{Type: TypeDir, Mtime: now,
				Extra: map[string]string{"unix:mode": "0755"}}); err != nil {
				return err
			}
		}
		return nil
	})
	d, err := Open(root, k, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != n || d.Root().Buckets() < 8 {
		t.Fatalf("len %d in %d buckets, want %d in many", d.Len(), d.Root().Buckets(), n)
	}
	if len(root) > 3*lim.RootInline+d.Root().Buckets()*100 {
		t.Fatalf("root is %d bytes for %d buckets: inline budget not kept", len(root), d.Root().Buckets())
	}
	all, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		rc, wc := childCaps(i)
		if e.Name != fmt.Sprintf("n%05d", i) || e.ReadCap != rc || !e.Meta.Mtime.Equal(now) || e.Meta.Extra["unix:mode"] != "0755" {
			t.Fatalf("entry %d = %+v", i, e)
		}
		if got, err := k.WriteCap(e); err != nil || got != wc {
			t.Fatalf("entry %d write cap %q, %v; want %q", i, got, err, wc)
		}
	}
	// One more entry: one bucket read, at most two chunks written.
	c.puts, c.gets = 0, 0
	root2 := edit(t, root, k, c, lim, func(tx *Tx) error { return tx.Set("extra", "tarn:lit:", "", Metadata{Type: TypeFile}) })
	if c.gets > 1 || c.puts > 2 {
		t.Fatalf("adding one entry read %d and wrote %d chunks; want <= 1 and <= 2", c.gets, c.puts)
	}
	d2, _ := Open(root2, k, c, nil)
	if e, ok, err := d2.Lookup(ctx, "extra"); err != nil || !ok || e.Meta.Type != TypeFile || e.HasWriteCap() {
		t.Fatalf("lookup extra: %+v %v %v", e, ok, err)
	}
	// Delete everything: buckets merge back to one inline bucket.
	root3 := edit(t, root2, k, c, lim, func(tx *Tx) error {
		for _, e := range append(all, Entry{Name: "extra"}) {
			if _, ok, err := tx.Delete(e.Name); err != nil || !ok {
				return fmt.Errorf("delete %q: %v %v", e.Name, ok, err)
			}
		}
		return nil
	})
	d3, _ := Open(root3, k, c, nil)
	if d3.Len() != 0 || d3.Root().Buckets() != 1 || !bytes.Equal(root3, EmptyRoot()) {
		t.Fatalf("after deleting all: %d entries in %d buckets, root %x", d3.Len(), d3.Root().Buckets(), root3)
	}
}

func TestReadOnlyKeys(t *testing.T) {
	ctx := context.Background()
	w := NewKeys([]byte(testRead), []byte(testWrite))
	c := newMemChunks()
	root := edit(t, EmptyRoot(), w, c, Limits{}, func(tx *Tx) error {
		return tx.Set("sub", "tarn:dir-read:sub", "tarn:dir:SECRETWRITE", Metadata{Type: TypeDir})
	})
	if bytes.Contains(root, []byte("SECRETWRITE")) {
		t.Fatal("the child write cap is in the root in clear")
	}
	ro := NewKeys([]byte(testRead), nil)
	d, err := Open(root, ro, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := d.Lookup(ctx, "sub")
	if err != nil || !ok || !e.HasWriteCap() {
		t.Fatalf("lookup: %+v %v %v", e, ok, err)
	}
	if wc, err := ro.WriteCap(e); !errors.Is(err, ErrNoWriteKey) || wc != "" {
		t.Fatalf("read-only keys opened the write cap: %q, %v", wc, err)
	}
	// A holder of another directory's write cap cannot open it either.
	other := NewKeys([]byte(testRead), []byte("other write key"))
	if wc, err := other.WriteCap(e); !errors.Is(err, ErrFormat) || wc != "" {
		t.Fatalf("foreign write key opened the write cap: %q, %v", wc, err)
	}
	// The box is bound to its name.
	e.Name = "moved"
	if _, err := w.WriteCap(e); !errors.Is(err, ErrFormat) {
		t.Fatalf("sealed cap opened under another name: %v", err)
	}
	if _, err := Edit(ctx, root, ro, c, nil, Limits{}, func(*Tx) error { return nil }); !errors.Is(err, ErrNoWriteKey) {
		t.Fatalf("edit with read-only keys: %v", err)
	}
}

func TestDecodeRootRefuses(t *testing.T) {
	good := EmptyRoot()
	half := func(d1, d2 byte) []byte {
		b := append([]byte{}, rootMagic[:]...)
		b = append(b, 2)
		for _, d := range []byte{d1, d2} {
			b = append(b, d, 0, formInline, 2, bucketVersion, 0)
		}
		return b
	}
	if _, err := DecodeRoot(half(1, 1)); err != nil {
		t.Fatalf("two halves: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XDR\x01"), good[4:]...)},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"gap", half(1, 2)},
		{"overlap", half(0, 1)},
		{"misaligned", half(2, 1)},
		{"too deep", half(1, maxDepth+1)},
		{"no buckets", append(append([]byte{}, rootMagic[:]...), 0)},
		{"unknown form", append(append([]byte{}, rootMagic[:]...), 1, 0, 0, 7, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeRoot(tc.b); !errors.Is(err, ErrFormat) {
				t.Fatalf("DecodeRoot = %v, want ErrFormat", err)
			}
		})
	}
}

func TestDecodeBucketRefuses(t *testing.T) {
	k := NewKeys([]byte(testRead), []byte(testWrite))
	box, _ := k.seal("a", "tarn:dir:w")
	one := Entry{Name: "a", ReadCap: "tarn:lit:", box: box}
	enc := func(es ...Entry) []byte { return encodeBucket(es) }
	if es, err := DecodeBucket(enc(one, Entry{Name: "b", ReadCap: "tarn:lit:"})); err != nil || len(es) != 2 {
		t.Fatalf("good bucket: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"unsorted", enc(Entry{Name: "b", ReadCap: "tarn:lit:"}, one)},
		{"duplicate", enc(one, one)},
		{"nfd name", enc(Entry{Name: "e\u0301", ReadCap: "tarn:lit:"})},
		{"slash name", enc(Entry{Name: "a/b", ReadCap: "tarn:lit:"})},
		{"not a cap", enc(Entry{Name: "a", ReadCap: "http://x"})},
		{"short box", enc(Entry{Name: "a", ReadCap: "tarn:lit:", box: []byte{1, 2, 3}})},
		{"bad type", enc(Entry{Name: "a", ReadCap: "tarn:lit:", Meta: Metadata{Type: 9}})},
		{"truncated", enc(one)[:20]},
		{"trailing", append(enc(one), 0)},
		{"huge count", []byte{bucketVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"version", append([]byte{9}, enc(one)[1:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeBucket(tc.b); !errors.Is(err, ErrFormat) {
				t.Fatalf("DecodeBucket = %v, want ErrFormat", err)
			}
		})
	}
}

func TestBucketRoundTripMetadata(t *testing.T) {
	k := NewKeys([]byte(testRead), []byte(testWrite))
	c := newMemChunks()
	m := Metadata{Type: TypeFile, Size: 1 << 40, Ctime: time.Unix(-5, 7).UTC(), Mtime: time.Unix(1<<40, 999999999).UTC(),
		Extra: map[string]string{"unix:mode": "0600", "dav:{DAV:}x": strings.Repeat("v", 1000), "empty": ""}}
	root := edit(t, EmptyRoot(), k, c, Limits{}, func(tx *Tx) error { return tx.Set("f", "tarn:lit:", "", m) })
	d, _ := Open(root, k, c, nil)
	e, ok, err := d.Lookup(context.Background(), "f")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if e.Meta.Type != m.Type || e.Meta.Size != m.Size || !e.Meta.Ctime.Equal(m.Ctime) || !e.Meta.Mtime.Equal(m.Mtime) ||
		len(e.Meta.Extra) != 3 || e.Meta.Extra["dav:{DAV:}x"] != m.Extra["dav:{DAV:}x"] || e.Meta.Extra["empty"] != "" {
		t.Fatalf("metadata %+v, want %+v", e.Meta, m)
	}
	for _, bad := range []Metadata{{Size: -1}, {Extra: map[string]string{"": "x"}}, {Extra: map[string]string{"k": strings.Repeat("v", MaxExtraValue+1)}}} {
		if _, err := Edit(context.Background(), root, k, c, nil, Limits{}, func(tx *Tx) error { return tx.Set("g", "tarn:lit:", "", bad) }); !errors.Is(err, ErrMetadata) {
			t.Fatalf("metadata %+v accepted: %v", bad, err)
		}
	}
}
