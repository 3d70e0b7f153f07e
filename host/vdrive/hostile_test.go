package vdrive_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// TestHostileDirectories: directories whose slot holds garbage, or whose
// root points at a chunk that is not a bucket, give ErrCorrupt errors on
// use, never a panic or a wrong listing, and the rest of the tree works.
func TestHostileDirectories(t *testing.T) {
	g := newGrid(t)
	c := newClient(t, g)
	st := vdrive.GridStore(c)
	ctx := ctxFor(t, time.Minute)
	root, _ := vdrive.NewRoot(ctx, st)
	d, _ := vdrive.New(st, root.String())

	slot := func(content []byte) string {
		w, err := st.CreateMutable(ctx, content)
		if err != nil {
			t.Fatal(err)
		}
		return cap.DirWrite{Slot: w}.String()
	}
	// A root whose only bucket is a chunk: a literal file of garbage.
	badChunk := append([]byte("TDR\x01\x01\x00\x03\x01"), byte(len(cap.Literal{Data: []byte("junk")}.String())))
	badChunk = append(badChunk, cap.Literal{Data: []byte("junk")}.String()...)
	// A root that claims 5 entries in an empty inline bucket.
	badCount := []byte("TDR\x01\x01\x00\x05\x00\x02\x01\x00")
	for name, content := range map[string][]byte{
		"garbage":   []byte("not a directory at all"),
		"empty":     {},
		"bad chunk": badChunk,
		"bad count": badCount,
	} {
		if err := d.Link(ctx, "/"+name, slot(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Mkdir(ctx, "/good"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"garbage", "empty", "bad chunk", "bad count"} {
		t.Run(name, func(t *testing.T) {
			_, err := d.ReadDir(ctx, "/"+name)
			if !errors.Is(err, vdrive.ErrCorrupt) {
				t.Fatalf("readdir: %v, want ErrCorrupt", err)
			}
			if _, err := d.Stat(ctx, "/"+name+"/x"); !errors.Is(err, vdrive.ErrCorrupt) {
				t.Fatalf("stat inside: %v, want ErrCorrupt", err)
			}
			if err := d.Mkdir(ctx, "/"+name+"/x"); !errors.Is(err, vdrive.ErrCorrupt) {
				t.Fatalf("mkdir inside: %v, want ErrCorrupt", err)
			}
		})
	}
	if got := names(t, d, "/"); len(got) != 5 {
		t.Fatalf("root lists %v", got)
	}
	if err := d.Mkdir(ctx, "/good/x"); err != nil {
		t.Fatalf("the healthy part of the tree: %v", err)
	}
}

// TestConcurrentRenameAndAdd: one client renames 60 entries of a
// directory while another adds 60 new ones to it; every entry ends under
// the expected name.
func TestConcurrentRenameAndAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("120 concurrent directory writes")
	}
	g := newGrid(t)
	a := newDrive(t, g)
	b := open(t, g, a.RootCap())
	ctx := ctxFor(t, 3*time.Minute)
	a.Mkdir(ctx, "/d")
	const n = 60
	links := map[string]string{}
	for i := 0; i < n; i++ {
		links[fmt.Sprintf("old-%02d", i)] = litCap(fmt.Sprint(i))
	}
	if err := a.LinkMany(ctx, "/d", links); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n && errs[0] == nil; i++ {
			errs[0] = a.Rename(ctx, fmt.Sprintf("/d/old-%02d", i), fmt.Sprintf("/d/renamed-%02d", i))
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n && errs[1] == nil; i++ {
			errs[1] = b.Link(ctx, fmt.Sprintf("/d/new-%02d", i), litCap("new"))
		}
	}()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	infos, err := a.ReadDir(ctx, "/d")
	if err != nil || len(infos) != 2*n {
		t.Fatalf("lists %d entries (%v), want %d", len(infos), err, 2*n)
	}
	for i := 0; i < n; i++ {
		if infos[i].Name() != fmt.Sprintf("new-%02d", i) || infos[n+i].Name() != fmt.Sprintf("renamed-%02d", i) ||
			infos[n+i].ReadCap() != litCap(fmt.Sprint(i)) {
			t.Fatalf("entries %d, %d: %s, %s", i, n+i, infos[i].Name(), infos[n+i].Name())
		}
	}
}
