package vdrive_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// slotCounter counts a Store's directory reads and changes.
type slotCounter struct {
	vdrive.Store
	reads, modifies, uploads atomic.Int64
	failUpload               atomic.Bool
}

var errUploadFailed = errors.New("test: upload refused")

func (s *slotCounter) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	s.reads.Add(1)
	return s.Store.ReadMutable(ctx, c)
}

func (s *slotCounter) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	s.modifies.Add(1)
	return s.Store.Modify(ctx, c, fn)
}

func (s *slotCounter) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	s.uploads.Add(1)
	if s.failUpload.Load() {
		io.Copy(io.Discard, r)
		return nil, errUploadFailed
	}
	return s.Store.Upload(ctx, r, size, progress)
}

// TestPutLinked: PutLinked and Writer.Linked say what they linked (the
// entry, with the cap that reads back the bytes put, and whether a file
// was replaced), for literal and CHK sizes, known and unknown.
func TestPutLinked(t *testing.T) {
	g := newGrid(t)
	d := newDrive(t, g, vdrive.WithDirCache(time.Hour))
	ctx := ctxFor(t, 2*time.Minute)
	for _, tc := range []struct {
		name   string
		size   int
		known  bool
		writer bool
	}{
		{"empty", 0, true, false},
		{"literal", 40, true, false},
		{"chk-known", 4096, true, false},
		{"chk-unknown", 4096, false, false},
		{"multi-segment", 1<<20 + 17, true, false},
		{"writer", 4096, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := "/" + tc.name
			for round, replaced := range []bool{false, true} {
				data := pseudo(byte(tc.size+round), tc.size)
				var l vdrive.Linked
				if tc.writer {
					w, err := d.Create(ctx, p)
					if err != nil {
						t.Fatal(err)
					}
					if l := w.Linked(); l.Info != nil {
						t.Fatal("Linked before Close has an entry")
					}
					if _, err := w.Write(data); err != nil {
						t.Fatal(err)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					l = w.Linked()
				} else {
					size := int64(-1)
					if tc.known {
						size = int64(tc.size)
					}
					var err error
					if l, err = d.PutLinked(ctx, p, bytes.NewReader(data), size, nil); err != nil {
						t.Fatal(err)
					}
				}
				if l.Info == nil || l.Replaced != replaced {
					t.Fatalf("round %d: Linked %+v, want replaced %v", round, l, replaced)
				}
				in, err := open(t, g, d.RootCap()).Stat(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if in.ReadCap() != l.Info.ReadCap() || in.Size() != int64(tc.size) || l.Info.Size() != int64(tc.size) ||
					in.Name() != l.Info.Name() || !in.ModTime().Equal(l.Info.ModTime()) {
					t.Fatalf("round %d: linked %s %d %v, a fresh Stat says %s %d %v", round,
						l.Info.Name(), l.Info.Size(), l.Info.ModTime(), in.Name(), in.Size(), in.ModTime())
				}
				f, err := d.OpenInfo(ctx, l.Info)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, f.Size())
				if n, err := f.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
					t.Fatalf("read %d of %d: %v", n, len(got), err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("round %d: OpenInfo reads other bytes", round)
				}
			}
		})
	}
	root, err := d.Stat(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenInfo(ctx, root); !errors.Is(err, vdrive.ErrIsDir) {
		t.Fatalf("OpenInfo of a directory: %v", err)
	}
}

// TestPutSizeMismatchLinksNothing: a body with fewer or more bytes than
// its declared size, or whose upload fails, links nothing and leaves a
// file already there as it was.
func TestPutSizeMismatchLinksNothing(t *testing.T) {
	g := newGrid(t)
	sc := &slotCounter{Store: vdrive.GridStore(newClient(t, g))}
	root, err := vdrive.NewRoot(ctxFor(t, time.Minute), sc)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(sc, root.String(), vdrive.WithDirCache(time.Hour))
	ctx := ctxFor(t, time.Minute)
	keep := pseudo(1, 4096)
	if _, err := d.PutLinked(ctx, "/kept", bytes.NewReader(keep), 4096, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
		size int64
		fail bool
	}{
		{"short", pseudo(2, 4000), 4096, false},
		{"long", pseudo(3, 5000), 4096, false},
		{"short-literal", pseudo(4, 10), 20, false},
		{"upload-fails", pseudo(5, 4096), 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc.failUpload.Store(tc.fail)
			defer sc.failUpload.Store(false)
			m0 := sc.modifies.Load()
			for _, p := range []string{"/new-" + tc.name, "/kept"} {
				if l, err := d.PutLinked(ctx, p, bytes.NewReader(tc.body), tc.size, nil); err == nil || l.Info != nil {
					t.Fatalf("%s: put of %d bytes as %d: %v, %+v", p, len(tc.body), tc.size, err, l)
				}
			}
			if m := sc.modifies.Load() - m0; m != 0 {
				t.Fatalf("%d directory changes for failed puts", m)
			}
		})
	}
	fresh := open(t, g, d.RootCap())
	if got := names(t, fresh, "/"); strings.Join(got, ",") != "kept" {
		t.Fatalf("root lists %v", got)
	}
	if !bytes.Equal(get(t, fresh, "/kept"), keep) {
		t.Fatal("/kept changed")
	}
}

// TestStatCached: StatCached takes a miss in a cached folder as it is (no
// directory read), where Stat reads again; both see a hit, and both see
// another client's file once the cache has expired or without a cache.
func TestStatCached(t *testing.T) {
	g := newGrid(t)
	sc := &slotCounter{Store: vdrive.GridStore(newClient(t, g))}
	root, err := vdrive.NewRoot(ctxFor(t, time.Minute), sc)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(sc, root.String(), vdrive.WithDirCache(time.Hour))
	other := open(t, g, root.String())
	ctx := ctxFor(t, time.Minute)
	put(t, d, "/mine", []byte("mine"))
	if _, err := d.Stat(ctx, "/mine"); err != nil { // caches the root
		t.Fatal(err)
	}
	put(t, other, "/theirs", []byte("theirs"))
	for _, tc := range []struct {
		name      string
		stat      func(context.Context, string) (*vdrive.Info, error)
		path      string
		found     bool
		wantReads int64
	}{
		{"cached hit", d.StatCached, "/mine", true, 0},
		{"cached miss taken", d.StatCached, "/theirs", false, 0},
		{"stat hit", d.Stat, "/mine", true, 0},
		{"stat miss read again", d.Stat, "/theirs", true, 1},
		{"root", d.StatCached, "/", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r0 := sc.reads.Load()
			in, err := tc.stat(ctx, tc.path)
			if tc.found != (err == nil) {
				t.Fatalf("found %v, want %v (%v)", err == nil, tc.found, err)
			}
			if !tc.found && !errors.Is(err, vdrive.ErrNotExist) {
				t.Fatalf("miss is %v, want ErrNotExist", err)
			}
			if tc.found && in == nil {
				t.Fatal("no Info")
			}
			if r := sc.reads.Load() - r0; r != tc.wantReads {
				t.Fatalf("%d directory reads, want %d", r, tc.wantReads)
			}
		})
	}
	// Without a cache, StatCached reads as Stat does.
	plain := open(t, g, root.String())
	if _, err := plain.StatCached(ctx, "/theirs"); err != nil {
		t.Fatalf("uncached StatCached: %v", err)
	}
	// Linking after a cached miss replaces the other client's file and
	// says so.
	l, err := d.PutLinked(ctx, "/theirs", strings.NewReader("replaced"), 8, nil)
	if err != nil || !l.Replaced {
		t.Fatalf("put over another client's file: %v, replaced %v", err, l.Replaced)
	}
	if got := string(get(t, plain, "/theirs")); got != "replaced" {
		t.Fatalf("/theirs reads %q", got)
	}
}
