package sftp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// What an SFTP upload of a new small file costs the grid: the upload, and
// nothing read. rclone (4 transfers, set_modtime off) sends per file a
// stat of the folder, open (WRITE|CREAT|TRUNC), a write, close and a stat
// of the file; the open and the link look the name up in the folder, a
// folder big enough to keep its entries in chunk files (immutable files
// on the grid). Those look-ups read no chunk back from the grid: the
// drives of a node share its write-behind's decoded chunks, so a chunk
// written by another drive (the write-behind's flusher, the drive that
// filled the folder) is found in memory. Before they shared it, every
// flush of the folder made the frontend's next look-ups in the buckets it
// rewrote read those chunks (0.25 chunk reads per file here, 0.7
// read_share calls per file through rclone on a dev grid).
func TestSmallUploadReadsNoShares(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    envOptions
	}{
		{"write-behind 100ms", envOptions{dirCache: time.Second, writeBehind: 100 * time.Millisecond}},
		{"links before answering", envOptions{dirCache: time.Second, behind: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { smallUploadReadsNoShares(t, tc.o) })
	}
}

// fillFolder makes dir with n entries, enough to keep them in chunks, all
// naming one file of 5,000 bytes (a size the tests' small files do not
// have, so its content is never uploaded again: an upload of content the
// grid holds already reads the held shares' headers).
func fillFolder(t *testing.T, e *env, dir string, n int) {
	t.Helper()
	d := e.drive("alice")
	ctx := ctxT(t)
	if err := d.Mkdir(ctx, dir); err != nil {
		t.Fatal(err)
	}
	e.put(d, dir+".seed", pseudo(250, 5000))
	info, err := d.Stat(ctx, dir+".seed")
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for i := range n {
		links[fmt.Sprintf("old%04d", i)] = info.ReadCap()
	}
	if err := d.LinkMany(ctx, dir, links); err != nil {
		t.Fatal(err)
	}
	// The folder keeps its entries in chunks: a drive of its own (its own
	// chunk cache, as on another node) reads one to find a name.
	other, err := vdrive.New(e.counts, e.roots["alice"])
	if err != nil {
		t.Fatal(err)
	}
	opens := e.counts.opens.Load()
	if _, err := other.Stat(ctx, dir+"/old0001"); err != nil {
		t.Fatal(err)
	}
	if e.counts.opens.Load() == opens {
		t.Fatalf("%s holds %d entries and no chunk: the test needs a bigger folder", dir, n)
	}
}

func smallUploadReadsNoShares(t *testing.T, o envOptions) {
	e := newEnv(t, o)
	fillFolder(t, e, "/dir", 400)
	const (
		n    = 40
		size = 4096
	)
	var sizedN atomic.Int64
	e.counts.onUpload = func(s int64) {
		if s == size {
			sizedN.Add(1)
		}
	}
	c := e.client("alice", alicePW)
	opens, srvReads, uploads := e.counts.opens.Load(), e.grid.Counts().Reads, e.counts.uploads.Load()
	rclonePut := func(i int) error {
		p := fmt.Sprintf("/dir/f%04d", i)
		if _, err := c.Stat("/dir"); err != nil {
			return err
		}
		f, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return err
		}
		if _, err := f.Write(pseudo(byte(i), size)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if fi, err := c.Stat(p); err != nil || fi.Size() != size {
			return fmt.Errorf("stat %s after the close: %v, %d bytes", p, err, fi.Size())
		}
		return nil
	}
	// 4 transfers; half the files, then a pause in which the write-behind
	// makes the folder's links (new chunks, written by its flusher), then
	// the rest: their look-ups are in the rewritten buckets.
	for _, batch := range [][2]int{{0, n / 2}, {n / 2, n}} {
		var wg sync.WaitGroup
		next := make(chan int)
		errs := make(chan error, n)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := rclonePut(i); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := batch[0]; i < batch[1]; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := e.counts.opens.Load() - opens; got != 0 {
		t.Errorf("%d immutable files (directory chunks) read for %d new files, want 0", got, n)
	}
	if got := e.grid.Counts().Reads - srvReads; got != 0 {
		t.Errorf("the servers read shares %d times for %d new files, want 0", got, n)
	}
	sized := sizedN.Load()
	if sized != n {
		t.Errorf("%d uploads of a file's %d bytes, want %d", sized, size, n)
	}
	t.Logf("%d files: %d uploads (%d directory chunks), %d directory changes", n,
		e.counts.uploads.Load()-uploads, e.counts.uploads.Load()-uploads-sized, e.counts.modifies.Load())
	d := e.drive("alice")
	for i := range n {
		got, err := e.get(d, fmt.Sprintf("/dir/f%04d", i))
		if err != nil || !bytes.Equal(got, pseudo(byte(i), size)) {
			t.Fatalf("file %d reads back wrong: %v", i, err)
		}
	}
}

// TestSCPUploadCost pins what scp's uploads of new small files cost the
// drive once its directories are cached (a node's SFTP drive keeps them a
// second): no directory read, no share read, and no directory change with
// write-behind, for legacy scp (-O) into a folder or into the root, and
// for scp in SFTP mode into a folder, which opens each file WRITE|CREAT
// without TRUNC and truncates with fsetstat after the writes (the open
// takes the cached miss, and the truncate to the written size settles
// that nothing of an older file shows: TestOpenWithoutTruncStaleMiss).
// scp in SFTP mode into the root stats the root before each file, which
// makes the root's pending links: a change per file there.
func TestSCPUploadCost(t *testing.T) {
	needTools(t, "scp")
	e := newEnv(t, envOptions{dirCache: time.Minute, writeBehind: time.Hour})
	fillFolder(t, e, "/dir", 400)
	key := e.keyFile(t)
	tmp := t.TempDir()
	for i, tc := range []struct {
		name      string
		flags     []string
		target    string
		wantReads int64 // directory (slot) reads per file
	}{
		{"legacy, into a folder", []string{"-O"}, "/dir/", 0},
		{"legacy, into the root", []string{"-O"}, "/", 0},
		{"sftp mode, into a folder", nil, "/dir/", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-i", key, "-P", e.port()}, sshOpts...), tc.flags...)
			local := func(j int) string {
				return filepath.Join(tmp, fmt.Sprintf("s%d-%d", i, j))
			}
			for j := range 4 {
				if err := os.WriteFile(local(j), pseudo(byte(10*i+j+1), 3000), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// The first command warms the drive's cached directories.
			if out, err := run(t, "scp", append(args, local(0), "alice@127.0.0.1:"+tc.target)...); err != nil {
				t.Fatalf("scp: %v\n%s", err, out)
			}
			reads, opens, srv, mods := e.counts.reads.Load(), e.counts.opens.Load(), e.grid.Counts().Reads, e.counts.modifies.Load()
			uploads := e.counts.uploads.Load()
			if out, err := run(t, "scp", append(args, local(1), local(2), local(3), "alice@127.0.0.1:"+tc.target)...); err != nil {
				t.Fatalf("scp: %v\n%s", err, out)
			}
			if got := e.counts.reads.Load() - reads; got != 3*tc.wantReads {
				t.Errorf("%d directory reads for 3 files, want %d", got, 3*tc.wantReads)
			}
			if got := e.counts.opens.Load() - opens; got != 0 {
				t.Errorf("%d immutable files read, want 0", got)
			}
			if got := e.grid.Counts().Reads - srv; got != 0 {
				t.Errorf("the servers read shares %d times, want 0", got)
			}
			if got := e.counts.modifies.Load() - mods; got != 0 {
				t.Errorf("%d directory changes, want 0 (the links wait in the journal)", got)
			}
			if got := e.counts.uploads.Load() - uploads; got != 3 {
				t.Errorf("%d uploads, want 3", got)
			}
			d := e.drive("alice")
			for j := range 4 {
				got, err := e.get(d, tc.target+filepath.Base(local(j)))
				if err != nil || !bytes.Equal(got, pseudo(byte(10*i+j+1), 3000)) {
					t.Fatalf("file %d reads back wrong: %v", j, err)
				}
			}
		})
	}
}

// TestOpenWithoutTruncStaleMiss: an open WRITE|CREAT without TRUNC of a
// name the drive's cached directory misses, while another client has
// made a file there: what the client reads, stats and finally links is
// what open(2) on the current file gives, the old content under the
// client's writes, as if the open had read the directory.
func TestOpenWithoutTruncStaleMiss(t *testing.T) {
	old := []byte("0123456789abcdefghij")
	for _, tc := range []struct {
		name string
		do   func(c *rawClient, h string) error
		want string
	}{
		{"close without a write", nil, string(old)},
		{"write at the start", func(c *rawClient, h string) error {
			return okReply(c.call(pWrite, pkt{}.str(h).u64(0).str("XYZ")))
		}, "XYZ3456789abcdefghij"},
		{"write past the start (a hole)", func(c *rawClient, h string) error {
			return okReply(c.call(pWrite, pkt{}.str(h).u64(5).str("XYZ")))
		}, "01234XYZ89abcdefghij"},
		{"write, then truncate to the written size (scp)", func(c *rawClient, h string) error {
			if err := okReply(c.call(pWrite, pkt{}.str(h).u64(0).str("XYZ"))); err != nil {
				return err
			}
			return okReply(c.call(pFsetstat, pkt{}.str(h).u32(0x1).u64(3)))
		}, "XYZ"},
		{"write, then truncate beyond it", func(c *rawClient, h string) error {
			if err := okReply(c.call(pWrite, pkt{}.str(h).u64(0).str("XYZ"))); err != nil {
				return err
			}
			return okReply(c.call(pFsetstat, pkt{}.str(h).u32(0x1).u64(8)))
		}, "XYZ34567"},
		{"write past the end", func(c *rawClient, h string) error {
			return okReply(c.call(pWrite, pkt{}.str(h).u64(20).str("XYZ")))
		}, "0123456789abcdefghijXYZ"},
		{"read before the close", func(c *rawClient, h string) error {
			r, err := c.call(pRead, pkt{}.str(h).u64(10).u32(5))
			if err != nil || r.typ != pData || !bytes.Contains(r.body, []byte("abcde")) {
				return fmt.Errorf("read: %v %+v, want abcde", err, r)
			}
			return nil
		}, string(old)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{dirCache: time.Minute, writeBehind: time.Hour})
			c := tarnClient(t, e, "alice", alicePW)
			if err := okReply(c.path1(pStat, "/")); err != nil {
				t.Fatal(err)
			}
			if r, err := c.path1(pStat, "/f"); err != nil || r.code != fxNoSuchFile {
				t.Fatalf("stat /f: %v %+v, want no such file", err, r)
			}
			// Another client (its own cached directories) makes /f.
			other, err := vdrive.New(e.counts, e.roots["alice"])
			if err != nil {
				t.Fatal(err)
			}
			e.put(other, "/f", old)
			r, err := c.open("/f", fRead|fWrite|fCreat, nil)
			if err != nil || r.typ != pHandle {
				t.Fatalf("open: %v %+v", err, r)
			}
			h := r.handle()
			if tc.do != nil {
				if err := tc.do(c, h); err != nil {
					t.Fatal(err)
				}
			}
			if err := okReply(c.closeHandle(h)); err != nil {
				t.Fatal(err)
			}
			got, err := e.get(e.drive("alice"), "/f")
			if err != nil || string(got) != tc.want {
				t.Fatalf("/f holds %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func okReply(r reply, err error) error {
	if err != nil {
		return err
	}
	if r.typ == pStatus && r.code != 0 {
		return fmt.Errorf("status %d: %s", r.code, r.msg)
	}
	return nil
}
