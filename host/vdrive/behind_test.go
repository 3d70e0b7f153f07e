package vdrive_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

// never is a write-behind delay no test waits for: links are made only
// when an operation needs them (or by Flush).
const never = time.Hour

// behindOn opens a write-behind in dir over a new client of g, its store
// counting slot calls. Closed at cleanup.
func behindOn(t testing.TB, g *testgrid.Grid, dir string, delay time.Duration) (*vdrive.Behind, *slotCounter) {
	t.Helper()
	sc := &slotCounter{Store: vdrive.GridStore(newClient(t, g))}
	b, err := vdrive.OpenBehind(sc, vdrive.BehindConfig{Dir: dir, Delay: delay, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, sc
}

// newRootCap makes an empty root on g.
func newRootCap(t testing.TB, g *testgrid.Grid) string {
	t.Helper()
	root, err := vdrive.NewRoot(ctxFor(t, time.Minute), vdrive.GridStore(newClient(t, g)))
	if err != nil {
		t.Fatal(err)
	}
	return root.String()
}

// frontDrive opens root over b as a frontend does.
func frontDrive(t testing.TB, b *vdrive.Behind, root string) *vdrive.Drive {
	t.Helper()
	d, err := vdrive.New(b, root, vdrive.WithDirCache(time.Second), vdrive.WithWriteBehind())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func putBytes(t testing.TB, d *vdrive.Drive, p string, data []byte) vdrive.Linked {
	t.Helper()
	l, err := d.PutLinked(ctxFor(t, time.Minute), p, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatalf("put %s: %v", p, err)
	}
	return l
}

// TestWriteBehindPendingVisible: files put through a write-behind drive
// are answered before their folder changes (no slot write), and every
// drive of the node sees them at once: Stat, StatCached, Open, a Writer
// over the name; another node (its own client) sees them only once made.
func TestWriteBehindPendingVisible(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	b, sc := behindOn(t, g, t.TempDir(), never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 2*time.Minute)
	if err := d.Mkdir(ctx, "/up"); err != nil {
		t.Fatal(err)
	}
	m0 := sc.modifies.Load()
	files := map[string][]byte{"/up/a.txt": pseudo(1, 4096), "/up/b.txt": pseudo(2, 30), "/top.bin": pseudo(3, 5000)}
	for p, data := range files {
		l := putBytes(t, d, p, data)
		if l.Replaced || l.Info.Size() != int64(len(data)) {
			t.Fatalf("put %s: linked %+v (size %d)", p, l, l.Info.Size())
		}
	}
	if n := sc.modifies.Load() - m0; n != 0 {
		t.Fatalf("%d directory changes before answering, want 0 (links written behind)", n)
	}
	if n := b.Pending(); n != len(files) {
		t.Fatalf("pending %d, want %d", n, len(files))
	}
	other, err := vdrive.New(b, root) // the API's kind of drive: no write-behind of its own
	if err != nil {
		t.Fatal(err)
	}
	for _, dr := range []struct {
		name string
		d    *vdrive.Drive
	}{{"same drive", d}, {"other drive of the node", other}} {
		for p, data := range files {
			for _, stat := range []func() (*vdrive.Info, error){
				func() (*vdrive.Info, error) { return dr.d.Stat(ctx, p) },
				func() (*vdrive.Info, error) { return dr.d.StatCached(ctx, p) },
			} {
				in, err := stat()
				if err != nil || in.Size() != int64(len(data)) || in.IsDir() {
					t.Fatalf("%s: stat %s: %v %v", dr.name, p, in, err)
				}
			}
			if got := get(t, dr.d, p); !bytes.Equal(got, data) {
				t.Fatalf("%s: %s reads other bytes", dr.name, p)
			}
		}
		if _, err := dr.d.Stat(ctx, "/up/a.txt/x"); !errors.Is(err, vdrive.ErrNotDir) {
			t.Fatalf("%s: stat below a pending file: %v, want ErrNotDir", dr.name, err)
		}
	}
	if n := sc.modifies.Load() - m0; n != 0 {
		t.Fatalf("stat and open made %d directory changes, want 0", n)
	}
	// Another node does not see them yet; it does once they are made.
	far := open(t, g, root)
	if _, err := far.Stat(ctx, "/up/a.txt"); !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("another node sees a pending link: %v", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != 0 {
		t.Fatalf("pending after flush: %d", b.Pending())
	}
	for p, data := range files {
		if got := get(t, far, p); !bytes.Equal(got, data) {
			t.Fatalf("after flush another node reads other bytes at %s", p)
		}
	}
	if n := sc.modifies.Load() - m0; n != 2 {
		t.Fatalf("flush made %d directory changes, want 2 (one per folder)", n)
	}
}

// TestWriteBehindOpsSeePending: each operation on a folder with a pending
// link acts on the folder as if the link were made (it is made first, or
// answered from the pending link), and another node then sees the result.
func TestWriteBehindOpsSeePending(t *testing.T) {
	g := newGrid(t)
	for _, tc := range []struct {
		name string
		op   func(d *vdrive.Drive) error
		// want is the names of /d afterwards, seen from another node.
		want []string
		// wantErr is the op's error (nil: none).
		wantErr error
	}{
		{"readdir", func(d *vdrive.Drive) error {
			in, err := d.ReadDir(ctxFor(t, time.Minute), "/d")
			if err == nil && (len(in) != 2 || in[0].Name() != "new.txt" || in[1].Name() != "old.txt") {
				err = fmt.Errorf("listed %d entries", len(in))
			}
			return err
		}, []string{"new.txt", "old.txt"}, nil},
		{"remove", func(d *vdrive.Drive) error { return d.Remove(ctxFor(t, time.Minute), "/d/new.txt") }, []string{"old.txt"}, nil},
		{"removeall", func(d *vdrive.Drive) error { return d.RemoveAll(ctxFor(t, time.Minute), "/d/new.txt") }, []string{"old.txt"}, nil},
		{"rename within", func(d *vdrive.Drive) error { return d.Rename(ctxFor(t, time.Minute), "/d/new.txt", "/d/moved.txt") },
			[]string{"moved.txt", "old.txt"}, nil},
		{"rename out", func(d *vdrive.Drive) error { return d.Rename(ctxFor(t, time.Minute), "/d/new.txt", "/moved.txt") },
			[]string{"old.txt"}, nil},
		{"rename over", func(d *vdrive.Drive) error { return d.Rename(ctxFor(t, time.Minute), "/d/old.txt", "/d/new.txt") },
			[]string{"new.txt"}, nil},
		{"mkdir", func(d *vdrive.Drive) error { return d.Mkdir(ctxFor(t, time.Minute), "/d/new.txt") },
			[]string{"new.txt", "old.txt"}, vdrive.ErrExist},
		{"link", func(d *vdrive.Drive) error { return d.Link(ctxFor(t, time.Minute), "/d/new.txt", litCap("x")) },
			[]string{"new.txt", "old.txt"}, vdrive.ErrExist},
		{"setmetadata", func(d *vdrive.Drive) error {
			return d.SetMetadata(ctxFor(t, time.Minute), "/d/new.txt", func(m *vdrive.Metadata) error {
				m.Extra = map[string]string{vdrive.ModeKey: "0600"}
				return nil
			})
		}, []string{"new.txt", "old.txt"}, nil},
		{"remove folder", func(d *vdrive.Drive) error { return d.Remove(ctxFor(t, time.Minute), "/d") },
			[]string{"new.txt", "old.txt"}, vdrive.ErrNotEmpty},
		{"stat root", func(d *vdrive.Drive) error {
			putBytes(t, d, "/r.txt", []byte("r"))
			in, err := d.Stat(ctxFor(t, time.Minute), "/")
			if err == nil && in.Size() != 2 {
				err = fmt.Errorf("root size %d, want 2 entries (one pending)", in.Size())
			}
			return err
		}, []string{"new.txt", "old.txt"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCap(t, g)
			b, _ := behindOn(t, g, t.TempDir(), never)
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			if err := d.Mkdir(ctx, "/d"); err != nil {
				t.Fatal(err)
			}
			put(t, d, "/d/old.txt", pseudo(4, 100))
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			putBytes(t, d, "/d/new.txt", pseudo(5, 200))
			err := tc.op(d)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			got := names(t, open(t, g, root), "/d")
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("another node lists %v, want %v", got, tc.want)
			}
			if tc.name == "setmetadata" {
				in, err := open(t, g, root).Stat(ctx, "/d/new.txt")
				if err != nil || in.Mode().Perm() != 0o600 || in.Size() != 200 {
					t.Fatalf("metadata set on a pending file: %v %v", in, err)
				}
			}
		})
	}
}

// TestWriteBehindBatches: many files put at once into one folder cost a
// few directory changes, not one per file, and a name put twice holds
// the last.
func TestWriteBehindBatches(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	b, sc := behindOn(t, g, t.TempDir(), 50*time.Millisecond)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 3*time.Minute)
	if err := d.Mkdir(ctx, "/many"); err != nil {
		t.Fatal(err)
	}
	m0 := sc.modifies.Load()
	const files, writers = 120, 8
	var wg sync.WaitGroup
	errs := make(chan error, files)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < files; i += writers {
				data := []byte(fmt.Sprintf("file %d", i))
				if _, err := d.PutLinked(ctx, fmt.Sprintf("/many/f%03d", i), bytes.NewReader(data), int64(len(data)), nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	putBytes(t, d, "/many/f000", []byte("last"))
	deadline := time.Now().Add(time.Minute)
	for b.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := b.Pending(); n != 0 {
		t.Fatalf("%d links still pending after a minute (delay 50ms)", n)
	}
	changes := sc.modifies.Load() - m0
	t.Logf("%d files, %d directory changes", files+1, changes)
	if changes > files/10 {
		t.Fatalf("%d directory changes for %d files, want at most %d", changes, files, files/10)
	}
	far := open(t, g, root)
	got := names(t, far, "/many")
	if len(got) != files {
		t.Fatalf("another node lists %d files, want %d", len(got), files)
	}
	if b := get(t, far, "/many/f000"); string(b) != "last" {
		t.Fatalf("/many/f000 holds %q, want the last put", b)
	}
	if b := get(t, far, "/many/f077"); string(b) != "file 77" {
		t.Fatalf("/many/f077 holds %q", b)
	}
}

// TestWriteBehindReplay: links acknowledged and then abandoned (as by a
// kill -9 of the node) are in the journal: the next start sees them at
// once and makes them; the journal is then empty.
func TestWriteBehindReplay(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, _ := behindOn(t, g, dir, never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 2*time.Minute)
	if err := d.Mkdir(ctx, "/sub"); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := range 20 {
		p := fmt.Sprintf("/sub/f%d", i)
		if i%4 == 0 {
			p = fmt.Sprintf("/r%d", i)
		}
		want[p] = pseudo(byte(i), 3000+i)
		putBytes(t, d, p, want[p])
	}
	putBytes(t, d, "/sub/f1", []byte("second"))
	want["/sub/f1"] = []byte("second")
	vdrive.Abandon(b)

	if got := names(t, open(t, g, root), "/sub"); len(got) != 0 {
		t.Fatalf("links were made before the kill: %v", got)
	}
	b2, _ := behindOn(t, g, dir, never)
	if n := b2.Pending(); n != len(want) {
		t.Fatalf("replay: %d pending, want %d", n, len(want))
	}
	d2 := frontDrive(t, b2, root)
	if in, err := d2.Stat(ctx, "/sub/f3"); err != nil || in.Size() != 3003 {
		t.Fatalf("replayed link not visible: %v %v", in, err)
	}
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	far := open(t, g, root)
	for p, data := range want {
		if got := get(t, far, p); !bytes.Equal(got, data) {
			t.Fatalf("after replay %s holds other bytes", p)
		}
	}
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	b3, _ := behindOn(t, g, dir, never)
	if n := b3.Pending(); n != 0 {
		t.Fatalf("journal holds %d links once they are made, want 0", n)
	}
}

// TestWriteBehindFailedLink: a link that cannot be made (another node
// made a directory at its name meanwhile) is kept in the failed links
// with its name and cap, and leaves the journal.
func TestWriteBehindFailedLink(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, _ := behindOn(t, g, dir, never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	l := putBytes(t, d, "/x", pseudo(9, 999))
	if err := open(t, g, root).Mkdir(ctx, "/x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (a failed link is recorded, not returned)", err)
	}
	if b.Pending() != 0 {
		t.Fatalf("failed link still pending")
	}
	in, err := open(t, g, root).Stat(ctx, "/x")
	if err != nil || !in.IsDir() {
		t.Fatalf("/x: %v %v, want the other node's directory", in, err)
	}
	f, err := os.Open(filepath.Join(dir, vdrive.FailedLinksFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rec struct{ Name, Cap, Folder, Error string }
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("no failed link recorded")
	}
	if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Name != "x" || rec.Cap != l.Info.ReadCap() || rec.Folder == "" || !strings.Contains(rec.Error, "directory") {
		t.Fatalf("failed link %+v, want name x, cap %s", rec, l.Info.ReadCap())
	}
	b.Close()
	b2, _ := behindOn(t, g, dir, never)
	if b2.Pending() != 0 {
		t.Fatal("a failed link stays in the journal")
	}
}

// TestWriteBehindOff: with no delay, a write-behind drive links before
// answering and makes no journal.
func TestWriteBehindOff(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, _ := behindOn(t, g, dir, 0)
	d := frontDrive(t, b, root)
	putBytes(t, d, "/now.txt", []byte("now"))
	if _, err := open(t, g, root).Stat(ctxFor(t, time.Minute), "/now.txt"); err != nil {
		t.Fatalf("not linked before answering: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, vdrive.JournalFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal made with write-behind off: %v", err)
	}
}

// TestWriteBehindConcurrent: writers, readers and removers on two drives
// of one write-behind, with a short delay (run with -race): every file
// put and not removed is there at the end, with its bytes.
func TestWriteBehindConcurrent(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	b, _ := behindOn(t, g, t.TempDir(), 5*time.Millisecond)
	d1, d2 := frontDrive(t, b, root), frontDrive(t, b, root)
	ctx := ctxFor(t, 3*time.Minute)
	for _, p := range []string{"/a", "/b"} {
		if err := d1.Mkdir(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	want := map[string]string{}
	var wg sync.WaitGroup
	fail := make(chan error, 100)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := d1
			if w%2 == 1 {
				d = d2
			}
			for i := range 12 {
				p := fmt.Sprintf("/%s/w%d-%d", []string{"a", "b"}[i%2], w, i)
				data := fmt.Sprintf("%s by %d", p, w)
				if _, err := d.PutLinked(ctx, p, strings.NewReader(data), int64(len(data)), nil); err != nil {
					fail <- err
					return
				}
				if in, err := d.Stat(ctx, p); err != nil || in.Size() != int64(len(data)) {
					fail <- fmt.Errorf("stat %s right after put: %v %v", p, in, err)
					return
				}
				switch i % 4 {
				case 1:
					if err := d.Remove(ctx, p); err != nil {
						fail <- err
						return
					}
					continue
				case 2:
					if _, err := d.ReadDir(ctx, "/a"); err != nil {
						fail <- err
						return
					}
				}
				mu.Lock()
				want[p] = data
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	far := open(t, g, root)
	var got []string
	for _, dir := range []string{"/a", "/b"} {
		for _, n := range names(t, far, dir) {
			got = append(got, dir+"/"+n)
		}
	}
	var exp []string
	for p := range want {
		exp = append(exp, p)
	}
	sort.Strings(got)
	sort.Strings(exp)
	if strings.Join(got, ",") != strings.Join(exp, ",") {
		t.Fatalf("another node lists\n%v\nwant\n%v", got, exp)
	}
	for p, data := range want {
		if b := get(t, far, p); string(b) != data {
			t.Fatalf("%s holds %q, want %q", p, b, data)
		}
	}
}

// testLogger logs through t at debug.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "behind", Level: hclog.Debug, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestWriteBehindSetMetadata: setting the metadata of a pending file (as
// rclone over SFTP does after each file) changes no folder: the pending
// link carries it, through a kill and replay too.
func TestWriteBehindSetMetadata(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, sc := behindOn(t, g, dir, never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	m0 := sc.modifies.Load()
	for i := range 5 {
		p := fmt.Sprintf("/f%d", i)
		putBytes(t, d, p, pseudo(byte(i), 100+i))
		err := d.SetMetadata(ctx, p, func(m *vdrive.Metadata) error {
			m.Mtime = mtime
			m.Extra = map[string]string{vdrive.ModeKey: "0640"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		in, err := d.Stat(ctx, p)
		if err != nil || !in.ModTime().Equal(mtime) || in.Mode().Perm() != 0o640 || in.Size() != int64(100+i) {
			t.Fatalf("stat %s after setmetadata: %v %v", p, in, err)
		}
	}
	if n := sc.modifies.Load() - m0; n != 0 {
		t.Fatalf("%d directory changes, want 0", n)
	}
	if err := d.SetMetadata(ctx, "/f0", func(*vdrive.Metadata) error { return errors.New("refused") }); err == nil {
		t.Fatal("fn's error not returned")
	}
	vdrive.Abandon(b)
	b2, _ := behindOn(t, g, dir, never)
	if n := b2.Pending(); n != 5 {
		t.Fatalf("replay: %d pending, want 5", n)
	}
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	far := open(t, g, root)
	for i := range 5 {
		p := fmt.Sprintf("/f%d", i)
		in, err := far.Stat(ctx, p)
		if err != nil || !in.ModTime().Equal(mtime) || in.Mode().Perm() != 0o640 {
			t.Fatalf("%s on another node: %v %v", p, in, err)
		}
		if got := get(t, far, p); !bytes.Equal(got, pseudo(byte(i), 100+i)) {
			t.Fatalf("%s holds other bytes", p)
		}
	}
}

// TestWriteBehindSameName: puts and metadata changes of one name at once
// (run with -race): what the node shows before the links are made is what
// the folder holds after, and what a replay of the journal makes.
func TestWriteBehindSameName(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	b, _ := behindOn(t, g, dir, never)
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, 2*time.Minute)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				if w%2 == 0 {
					data := fmt.Sprintf("writer %d put %d", w, i)
					if _, err := d.PutLinked(ctx, "/x", strings.NewReader(data), int64(len(data)), nil); err != nil {
						t.Error(err)
					}
					continue
				}
				err := d.SetMetadata(ctx, "/x", func(m *vdrive.Metadata) error {
					m.Mtime = time.Unix(int64(1000*w+i), 0).UTC()
					return nil
				})
				if err != nil && !errors.Is(err, vdrive.ErrNotExist) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	in, err := d.Stat(ctx, "/x")
	if err != nil {
		t.Fatal(err)
	}
	want := in.ReadCap()
	vdrive.Abandon(b)
	b2, _ := behindOn(t, g, dir, never)
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := open(t, g, root).Stat(ctx, "/x")
	if err != nil || got.ReadCap() != want {
		t.Fatalf("after replay /x is %v (%v), the node showed %s", got, err, want)
	}
}

// TestWriteBehindPutOverSetMetadata: a file put again while its earlier
// link, with metadata set on it, is still pending keeps that metadata
// (ctime, extra keys) as a put over a linked file does: what the node
// shows before the link is made is what the folder holds after, whether
// the links are made by this run or by a replay of its journal.
func TestWriteBehindPutOverSetMetadata(t *testing.T) {
	for _, tc := range []struct {
		name   string
		replay bool
	}{{"flush", false}, {"replay", true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrid(t)
			root := newRootCap(t, g)
			dir := t.TempDir()
			b, _ := behindOn(t, g, dir, never)
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			putBytes(t, d, "/x", []byte("one"))
			ctime := time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC)
			err := d.SetMetadata(ctx, "/x", func(m *vdrive.Metadata) error {
				m.Ctime = ctime
				m.Extra = map[string]string{vdrive.ModeKey: "0640"}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			putBytes(t, d, "/x", []byte("two"))
			shown, err := d.Stat(ctx, "/x")
			if err != nil || shown.Mode().Perm() != 0o640 {
				t.Fatalf("pending /x: %v %v, want mode 0640", shown, err)
			}
			if tc.replay {
				vdrive.Abandon(b)
				b, _ = behindOn(t, g, dir, never)
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			in, err := open(t, g, root).Stat(ctx, "/x")
			if err != nil {
				t.Fatal(err)
			}
			if in.ReadCap() != shown.ReadCap() || in.Mode().Perm() != shown.Mode().Perm() || !in.Metadata().Ctime.Equal(shown.Metadata().Ctime) {
				t.Fatalf("linked /x: cap %s mode %o ctime %s; the node showed cap %s mode %o ctime %s",
					in.ReadCap(), in.Mode().Perm(), in.Metadata().Ctime, shown.ReadCap(), shown.Mode().Perm(), shown.Metadata().Ctime)
			}
		})
	}
}

// TestJournalPrivate: the journal holds folder write caps, so it is
// readable by the node's user alone, as the node's other secrets are,
// even when a copy or an older run left it open to others.
func TestJournalPrivate(t *testing.T) {
	g := newGrid(t)
	dir := t.TempDir()
	path := filepath.Join(dir, vdrive.JournalFile)
	for _, tc := range []struct {
		name string
		mode os.FileMode // the file's mode before the open (0: none yet)
	}{{"new", 0}, {"left open to others", 0o644}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode != 0 {
				if err := os.Chmod(path, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := behindOn(t, g, dir, never)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("journal mode %o, want 600", fi.Mode().Perm())
			}
			b.Close()
		})
	}
}

// TestJournalBadRecordLog: a journal record that cannot be replayed is
// kept in the failed links (readable by the node's user alone), and the
// log, which is not a secret, does not get the folder write cap it holds.
func TestJournalBadRecordLog(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	dir := t.TempDir()
	// A journal of an older version (bbolt), taken over at the open.
	db, err := bolt.Open(filepath.Join(dir, "links-journal.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := fmt.Sprintf(`{"dir":%q,"name":"a/b","cap":%q,"size":1}`, root, root)
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("links"))
		if err != nil {
			return err
		}
		return bk.Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte(rec))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// An older failed-links file open to others is made private.
	if err := os.WriteFile(filepath.Join(dir, vdrive.FailedLinksFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	var mu sync.Mutex
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: lockedWriter{&mu, &logged}})
	b, err := vdrive.OpenBehind(vdrive.GridStore(newClient(t, g)), vdrive.BehindConfig{Dir: dir, Delay: never, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Pending() != 0 {
		t.Fatalf("a bad record is pending")
	}
	if _, err := os.Stat(filepath.Join(dir, "links-journal.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the older journal is left after it was taken over: %v", err)
	}
	mu.Lock()
	out := logged.String()
	mu.Unlock()
	if !strings.Contains(out, "cannot be read") {
		t.Fatalf("bad record not logged: %q", out)
	}
	if strings.Contains(out, root) {
		t.Fatalf("the log holds the folder write cap: %q", out)
	}
	failed, err := os.ReadFile(filepath.Join(dir, vdrive.FailedLinksFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(failed), "a/b") {
		t.Fatalf("failed links %q do not keep the record", failed)
	}
	fi, err := os.Stat(filepath.Join(dir, vdrive.FailedLinksFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("failed links mode %v (%v), want 600", fi.Mode(), err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// refusingStore refuses every directory change while refuse is set, as
// servers refusing for a while do.
type refusingStore struct {
	slotCounter
	refuse atomic.Bool
}

var errRefused = errors.New("test: servers refuse changes for now")

func (s *refusingStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	if s.refuse.Load() {
		s.modifies.Add(1)
		return errRefused
	}
	return s.slotCounter.Modify(ctx, c, fn)
}

// TestWriteBehindBackoffUnderLoad: while a folder's changes fail, new
// files into it are not acknowledged behind (backpressure): each makes
// its own change, as without write-behind, and gets its error; they do
// not each start a retry of the folder besides (the retry waits for its
// backoff), and the links acknowledged before are all made once the grid
// takes them.
func TestWriteBehindBackoffUnderLoad(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	rs := &refusingStore{slotCounter: slotCounter{Store: vdrive.GridStore(newClient(t, g))}}
	b, err := vdrive.OpenBehind(rs, vdrive.BehindConfig{Dir: t.TempDir(), Delay: never, FlushAt: 4, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	rs.refuse.Store(true)
	for i := range 4 {
		putBytes(t, d, fmt.Sprintf("/f%d", i), []byte("x"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for rs.modifies.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	first := rs.modifies.Load()
	if first == 0 {
		t.Fatal("no change tried at FlushAt")
	}
	time.Sleep(200 * time.Millisecond) // the failed change settled
	for i := 4; i < 40; i++ {
		data := []byte("x")
		_, err := d.PutLinked(ctx, fmt.Sprintf("/f%d", i), bytes.NewReader(data), 1, nil)
		if !errors.Is(err, errRefused) {
			t.Fatalf("put /f%d into a folder whose changes fail: %v, want %v", i, err, errRefused)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	// One per refused file, and 1 or 2 more on a loaded machine (a
	// change under way when the first puts came).
	if n := rs.modifies.Load() - first; n > 36+3 {
		t.Fatalf("%d changes tried for 36 refused files while the folder backs off, want at most 39", n)
	}
	if n := b.Pending(); n != 4 {
		t.Fatalf("%d links pending, want the 4 acknowledged", n)
	}
	rs.refuse.Store(false)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(t, open(t, g, root), "/"); len(got) != 4 {
		t.Fatalf("%d files linked, want 4: %v", len(got), got)
	}
}
