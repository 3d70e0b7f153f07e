package sftp

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBigPutOneSpool: a big file written through SFTP is spooled once.
// Written in order (or nearly), it streams: the grid hashes its key from
// the spool while it arrives and encodes from the spool at the close
// (grid.WithSpool). Rewritten after the stream read it, or too scattered,
// it is uploaded at the close from the spool, read in place (an
// io.ReaderAt of known size). Either way the grid client makes no spool
// file of its own, the bytes read back right, and the frontend's spool
// folder holds no file (spools are unlinked at open).
func TestBigPutOneSpool(t *testing.T) {
	for _, wb := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("write-behind %v", wb), func(t *testing.T) { bigPutOneSpool(t, wb) })
	}
}

func bigPutOneSpool(t *testing.T, writeBehind time.Duration) {
	e := newEnv(t, envOptions{writeBehind: writeBehind})
	const chunk = 32 << 10
	data := pseudo(8, 3<<20)
	write := func(c *rawClient, h string, off int, b []byte) {
		t.Helper()
		if r, err := c.call(pWrite, pkt{}.str(h).u64(uint64(off)).str(string(b))); err != nil || r.result() != 0 {
			t.Fatalf("write at %d: %v %d %q", off, err, r.result(), r.msg)
		}
	}
	for _, tc := range []struct {
		name     string
		streamed bool
		run      func(c *rawClient, h string) []byte // returns the expected content
	}{
		{"in order", true, func(c *rawClient, h string) []byte {
			for off := 0; off < len(data); off += chunk {
				write(c, h, off, data[off:off+chunk])
			}
			return data
		}},
		{"pairs swapped", true, func(c *rawClient, h string) []byte {
			for off := 0; off < len(data); off += 2 * chunk {
				write(c, h, off+chunk, data[off+chunk:off+2*chunk])
				write(c, h, off, data[off:off+chunk])
			}
			return data
		}},
		{"rewrite of streamed bytes", false, func(c *rawClient, h string) []byte {
			for off := 0; off < len(data); off += chunk {
				write(c, h, off, data[off:off+chunk])
			}
			time.Sleep(200 * time.Millisecond) // let the stream read the start
			write(c, h, 10, []byte("REWRITTEN"))
			want := bytes.Clone(data)
			copy(want[10:], "REWRITTEN")
			return want
		}},
		{"too scattered", false, func(c *rawClient, h string) []byte {
			// Every other chunk first, backwards: more writes beyond the
			// prefix than the stream tracks.
			const small = 256
			want := pseudo(9, 2*(maxPending+8)*small)
			for off := len(want) - small; off >= 0; off -= 2 * small {
				write(c, h, off, want[off:off+small])
			}
			for off := 0; off < len(want); off += 2 * small {
				write(c, h, off, want[off:off+small])
			}
			return want
		}},
		{"hole", true, func(c *rawClient, h string) []byte {
			for off := 0; off < 1<<20; off += chunk {
				write(c, h, off, data[off:off+chunk])
			}
			write(c, h, 2<<20, []byte("tail"))
			want := make([]byte, 2<<20+4)
			copy(want, data[:1<<20])
			copy(want[2<<20:], "tail")
			return want
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tarnClient(t, e, "alice", alicePW)
			p := "/" + strings.ReplaceAll(tc.name, " ", "-")
			inPlace := e.counts.inPlace.Load()
			before := strings.Count(e.logBuf.String(), "uploaded (streamed)")
			r, err := c.open(p, fWrite|fCreat|fTrunc, nil)
			if err != nil || r.typ != pHandle {
				t.Fatalf("open %s: %v %+v", p, err, r)
			}
			h := r.handle()
			want := tc.run(c, h)
			if ents, _ := os.ReadDir(e.spool); len(ents) != 0 {
				t.Errorf("%d files in the frontend's spool folder while writing, want 0 (unlinked)", len(ents))
			}
			if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
				t.Fatalf("close: %v %d %q", err, r.result(), r.msg)
			}
			streamed := strings.Count(e.logBuf.String(), "uploaded (streamed)") > before
			if streamed != tc.streamed {
				t.Fatalf("streamed %v, want %v", streamed, tc.streamed)
			}
			if n := e.counts.inPlace.Load() - inPlace; !streamed && n != 1 {
				t.Fatal("the close's upload was not given the spool as an io.ReaderAt of known size")
			}
			if n := e.counts.gridSpools.Load(); n != 0 {
				t.Fatalf("the grid client spooled the file again (%d files in its TempDir)", n)
			}
			got, err := e.get(e.drive("alice"), p)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back %d bytes (%v), want %d identical", len(got), err, len(want))
			}
		})
	}
	t.Run("client gone mid-stream", func(t *testing.T) {
		conn, err := e.dial("alice", alicePW)
		if err != nil {
			t.Fatal(err)
		}
		sess, _ := conn.NewSession()
		in, _ := sess.StdinPipe()
		out, _ := sess.StdoutPipe()
		sess.RequestSubsystem("sftp")
		c, err := newRawClient(out, in)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.open("/gone", fWrite|fCreat|fTrunc, nil)
		if err != nil || r.typ != pHandle {
			t.Fatalf("open: %v %+v", err, r)
		}
		for off := 0; off < 3<<20; off += chunk {
			write(c, r.handle(), off, data[off:off+chunk])
		}
		conn.Close()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(e.logBuf.String(), "upload abandoned") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := e.drive("alice").Stat(ctxT(t), "/gone"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat after the client left: %v", err)
		}
	})
}

// TestPerFileDirectoryChanges pins what each client's per-file request
// sequence costs the drive, with the node's cached directories: no
// directory read, and one directory change (the link of the upload) for
// a plain open, write, close (rclone, scp, OpenSSH's put of a 0644 file).
// A mode or mtime asked for at open or on the open handle (OpenSSH's put
// of a file whose mode is not 0644, put -p's fsetstat), or a setstat of
// the path after the close (rclone keeping mtimes), is a second change:
// vdrive's Put links with default metadata, and SetMetadata follows. A
// Put that took the entry's metadata would make the first two one change.
//
// With the node's write-behind of links, none makes a directory change:
// a close's link waits in the journal for others of its folder, and a
// SetMetadata of a file whose link is pending edits that link (vdrive,
// since 0a24397). The files are in the root, whose Stat would make its
// pending links first: the open of a new file does not stat the root.
func TestPerFileDirectoryChanges(t *testing.T) {
	for _, wb := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("write-behind %v", wb), func(t *testing.T) { perFileDirectoryChanges(t, wb) })
	}
}

func perFileDirectoryChanges(t *testing.T, writeBehind time.Duration) {
	e := newEnv(t, envOptions{dirCache: time.Minute, writeBehind: writeBehind})
	c := tarnClient(t, e, "alice", alicePW)
	if r, err := c.path1(pStat, "/"); err != nil || r.result() != 0 {
		t.Fatalf("stat /: %v %+v", err, r)
	}
	const (
		attrPerm  = 0x4
		attrTimes = 0x8
	)
	mt := uint32(time.Date(2020, 5, 17, 10, 0, 0, 0, time.UTC).Unix())
	data := pseudo(4, 4096)
	ok := func(what string, r reply, err error) {
		t.Helper()
		if err != nil || r.result() != 0 {
			t.Fatalf("%s: %v %d %q", what, err, r.result(), r.msg)
		}
	}
	for i, tc := range []struct {
		name       string
		openAttrs  pkt
		fsetstat   pkt // on the handle before the close
		setstat    pkt // of the path after the close
		wantChange int64
		wantMode   uint32
	}{
		{"open, write, close", nil, nil, nil, 1, 0o644},
		{"open with mode 0600", pkt{}.u32(attrPerm).u32(0o600), nil, nil, 2, 0o600},
		{"put -p: fsetstat before the close", nil, pkt{}.u32(attrPerm | attrTimes).u32(0o640).u32(mt).u32(mt), nil, 2, 0o640},
		{"setstat of the times after the close", nil, nil, pkt{}.u32(attrTimes).u32(mt).u32(mt), 2, 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("/file%d", i)
			reads, changes := e.counts.reads.Load(), e.counts.modifies.Load()
			r, err := c.open(p, fWrite|fCreat|fTrunc, tc.openAttrs)
			if err != nil || r.typ != pHandle {
				t.Fatalf("open %s: %v %+v", p, err, r)
			}
			h := r.handle()
			r, err = c.call(pWrite, pkt{}.str(h).u64(0).str(string(data)))
			ok("write", r, err)
			if tc.fsetstat != nil {
				r, err = c.call(pFsetstat, pkt{}.str(h).append(tc.fsetstat))
				ok("fsetstat", r, err)
			}
			r, err = c.closeHandle(h)
			ok("close", r, err)
			if tc.setstat != nil {
				r, err = c.call(pSetstat, pkt{}.str(p).append(tc.setstat))
				ok("setstat", r, err)
			}
			if n := e.counts.reads.Load() - reads; n != 0 {
				t.Errorf("%d directory reads, want 0", n)
			}
			want := tc.wantChange
			if writeBehind > 0 {
				want = 0 // the link, and any metadata, wait in the journal
			}
			if n := e.counts.modifies.Load() - changes; n != want {
				t.Errorf("%d directory changes, want %d", n, want)
			}
			info, err := e.drive("alice").Stat(ctxT(t), p)
			if err != nil || info.Size() != int64(len(data)) || uint32(info.Mode().Perm()) != tc.wantMode {
				t.Fatalf("stat: %v, size %d, mode %o; want %d bytes, mode %o", err, info.Size(), info.Mode().Perm(), len(data), tc.wantMode)
			}
			if (tc.fsetstat != nil || tc.setstat != nil) && info.ModTime().Unix() != int64(mt) {
				t.Errorf("mtime %v, want %v", info.ModTime(), time.Unix(int64(mt), 0))
			}
		})
	}
}
