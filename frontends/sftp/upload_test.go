package sftp

import (
	"bytes"
	"errors"
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
	e := newEnv(t, envOptions{})
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
