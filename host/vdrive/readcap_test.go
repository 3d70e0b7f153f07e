package vdrive_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
	"github.com/tarnfs/tarn/host/vdrive"
)

// TestReadCapHidesChildWriteCaps decodes a directory with only its read
// cap, root and chunks both, and shows that the child write caps are
// there only sealed: absent in clear, not openable with anything a
// read-cap holder can derive.
func TestReadCapHidesChildWriteCaps(t *testing.T) {
	g := newGrid(t)
	c := newClient(t, g)
	st := vdrive.GridStore(c)
	ctx := ctxFor(t, 2*time.Minute)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	// Small buckets, so that entries live in chunks as well as inline.
	d, _ := vdrive.New(st, root.String(), vdrive.WithLimits(dirnode.Limits{MaxBucket: 2 << 10, InlineMax: 512, RootInline: 1 << 10}))
	var secrets [][]byte
	links := map[string]string{}
	for i := 0; i < 40; i++ {
		w, err := cap.NewDirWrite()
		if err != nil {
			t.Fatal(err)
		}
		links[fmt.Sprintf("sub%02d", i)] = w.String()
		secrets = append(secrets, []byte(w.String()), w.Slot.Secret[:], []byte(w.Slot.String()))
		wk := w.Slot.WriteKey()
		secrets = append(secrets, wk[:])
	}
	if err := d.LinkMany(ctx, "/", links); err != nil {
		t.Fatal(err)
	}
	if err := d.Mkdir(ctx, "/real"); err != nil {
		t.Fatal(err)
	}
	ri, _ := d.Stat(ctx, "/real")
	secrets = append(secrets, []byte(ri.WriteCap()))

	// Everything a read-cap holder can fetch: the root and its chunks.
	rc := root.ReadCap()
	raw, err := st.ReadMutable(ctx, rc.Slot)
	if err != nil {
		t.Fatal(err)
	}
	keys := dirnode.NewKeys(rc.Slot.ReadKey[:], nil)
	dir, err := dirnode.Open(raw, keys, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dir.Root().Chunks()) == 0 {
		t.Fatal("no chunks: the test does not cover chunked buckets")
	}
	all := [][]byte{raw}
	for _, ref := range dir.Root().Chunks() {
		cp, _ := cap.Parse(ref)
		f, err := st.Open(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		all = append(all, b)
	}
	for _, b := range all {
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Fatalf("a child write secret (%d bytes) is readable with the read cap", len(s))
			}
		}
	}
	// Decoded with the read cap: every directory entry has a sealed write
	// cap that does not open, with no key or with the read key as key.
	ro, _ := vdrive.New(st, rc.String())
	infos, err := ro.ReadDir(ctx, "/")
	if err != nil || len(infos) != 41 {
		t.Fatalf("read-only list: %d entries, %v", len(infos), err)
	}
	guess := dirnode.NewKeys(rc.Slot.ReadKey[:], rc.Slot.ReadKey[:])
	dir2, _ := dirnode.Open(raw, keys, chunkStore{st}, nil)
	es, err := dir2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if !e.HasWriteCap() {
			t.Fatalf("%s has no sealed write cap", e.Name)
		}
		if wc, err := keys.WriteCap(e); !errors.Is(err, dirnode.ErrNoWriteKey) || wc != "" {
			t.Fatalf("%s: read keys opened %q (%v)", e.Name, wc, err)
		}
		if wc, err := guess.WriteCap(e); !errors.Is(err, dirnode.ErrFormat) || wc != "" {
			t.Fatalf("%s: read key as write key opened %q (%v)", e.Name, wc, err)
		}
	}
	for _, in := range infos {
		if in.WriteCap() != "" {
			t.Fatalf("read-only drive gives the write cap of %s", in.Name())
		}
	}
	// The writer sees them all.
	winfos, _ := d.ReadDir(ctx, "/")
	for _, in := range winfos {
		if in.Name() != "real" && in.WriteCap() != links[in.Name()] {
			t.Fatalf("writer reads write cap %q of %s, want %q", in.WriteCap(), in.Name(), links[in.Name()])
		}
	}
}
