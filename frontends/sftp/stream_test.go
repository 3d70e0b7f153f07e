package sftp

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// TestStreamUploadFails: what the close does when a stream's upload fails
// depends on when. Failing at the close (the upload read the whole file
// and the grid cannot store it), the close fails with that error, once:
// the spool is not uploaded again, which would double the time the close
// takes to fail, and nothing is linked. Failing while the client still
// writes (here the Put's look-up of the folder, removed for a while), the
// error is stale by the close: the spool is uploaded then, and the close
// succeeds.
func TestStreamUploadFails(t *testing.T) {
	const chunk = 32 << 10
	data := pseudo(11, 3<<20)
	for _, tc := range []struct {
		name       string
		gridDown   bool // three of the five servers (K=3, H=4) stop before the close
		folderGone bool // /d is removed before the writes and made again after them
		wantOK     bool
	}{
		{name: "grid fails at the close", gridDown: true},
		{name: "look-up fails while writing", folderGone: true, wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			c := tarnClient(t, e, "alice", alicePW)
			ok := func(what string, r reply, err error) {
				t.Helper()
				if err != nil || r.result() != 0 {
					t.Fatalf("%s: %v %d %q", what, err, r.result(), r.msg)
				}
			}
			r, err := c.call(pMkdir, pkt{}.str("/d").u32(0))
			ok("mkdir", r, err)
			r, err = c.open("/d/big", fWrite|fCreat|fTrunc, nil)
			if err != nil || r.typ != pHandle {
				t.Fatalf("open: %v %+v", err, r)
			}
			h := r.handle()
			if tc.folderGone {
				r, err = c.path1(pRmdir, "/d")
				ok("rmdir", r, err)
			}
			uploads := e.counts.uploads.Load()
			for off := 0; off < len(data); off += chunk {
				r, err := c.call(pWrite, pkt{}.str(h).u64(uint64(off)).str(string(data[off:off+chunk])))
				ok("write", r, err)
			}
			time.Sleep(300 * time.Millisecond) // the stream reads what came
			if tc.folderGone {
				r, err = c.call(pMkdir, pkt{}.str("/d").u32(0))
				ok("mkdir again", r, err)
			}
			if tc.gridDown {
				for _, s := range e.grid.Servers[:3] {
					s.Stop()
				}
			}
			r, err = c.closeHandle(h)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.result() == 0; got != tc.wantOK {
				t.Fatalf("close: status %d %q, want success %v", r.result(), r.msg, tc.wantOK)
			}
			if tc.gridDown {
				if n := e.counts.uploads.Load() - uploads; n != 1 {
					t.Errorf("%d grid uploads of the file, want 1 (the stream's)", n)
				}
				for _, s := range e.grid.Servers[:3] {
					if err := s.Restart(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if fellBack := strings.Contains(e.logBuf.String(), "not streamed; uploading from the spool"); fellBack != tc.folderGone {
				t.Errorf("spool uploaded at the close: %v, want %v", fellBack, tc.folderGone)
			}
			got, err := e.get(e.drive("alice"), "/d/big")
			switch {
			case tc.wantOK && (err != nil || !bytes.Equal(got, data)):
				t.Fatalf("read back %d bytes (%v), want %d identical", len(got), err, len(data))
			case !tc.wantOK && !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("read after the failed close: %v, want not exist", err)
			}
		})
	}
}
