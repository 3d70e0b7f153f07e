package sftp

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// TestStreamedUpload: a file written in order streams to the grid while
// it arrives; rewrites of streamed bytes, truncates and scattered writes
// fall back to the spool; a client gone mid-stream links nothing.
func TestStreamedUpload(t *testing.T) {
	e := newEnv(t, envOptions{})
	const chunk = 32 << 10
	data := pseudo(8, 6<<20)
	write := func(c *rawClient, h string, off int, b []byte) {
		t.Helper()
		if r, err := c.call(pWrite, pkt{}.str(h).u64(uint64(off)).str(string(b))); err != nil || r.result() != 0 {
			t.Fatalf("write at %d: %v %d %q", off, err, r.result(), r.msg)
		}
	}
	open := func(c *rawClient, p string) string {
		t.Helper()
		r, err := c.open(p, fWrite|fCreat|fTrunc, nil)
		if err != nil || r.typ != pHandle {
			t.Fatalf("open %s: %v %+v", p, err, r)
		}
		return r.handle()
	}
	closeH := func(c *rawClient, h string) {
		t.Helper()
		if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
			t.Fatalf("close: %v %d %q", err, r.result(), r.msg)
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
			time.Sleep(200 * time.Millisecond) // let the stream take the start
			write(c, h, 10, []byte("REWRITTEN"))
			want := bytes.Clone(data)
			copy(want[10:], "REWRITTEN")
			return want
		}},
		{"hole at the end", true, func(c *rawClient, h string) []byte {
			for off := 0; off < 2<<20; off += chunk {
				write(c, h, off, data[off:off+chunk])
			}
			write(c, h, 3<<20, []byte("tail"))
			want := make([]byte, 3<<20+4)
			copy(want, data[:2<<20])
			copy(want[3<<20:], "tail")
			return want
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tarnClient(t, e, "alice", alicePW)
			p := "/" + strings.ReplaceAll(tc.name, " ", "-")
			before := strings.Count(e.logBuf.String(), "uploaded (streamed)")
			h := open(c, p)
			want := tc.run(c, h)
			closeH(c, h)
			got, err := e.get(e.drive("alice"), p)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back %d bytes (%v), want %d identical", len(got), err, len(want))
			}
			streamed := strings.Count(e.logBuf.String(), "uploaded (streamed)") > before
			if streamed != tc.streamed {
				t.Fatalf("streamed %v, want %v", streamed, tc.streamed)
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
		h := open(c, "/gone")
		for off := 0; off < 3<<20; off += chunk {
			write(c, h, off, data[off:off+chunk])
		}
		conn.Close()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(e.logBuf.String(), "upload abandoned") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := e.drive("alice").Stat(ctxT(t), "/gone"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat after the client left mid-stream: %v", err)
		}
	})
}
