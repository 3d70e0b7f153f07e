package sftp

import (
	"os"
	"testing"
)

// TestAppendOffsets: writes to a handle opened with APPEND land at the
// end of the file, as with sftp-server (O_APPEND), whether the client
// sends the real offsets (OpenSSH's reput and put -a, sshfs) or counts
// from 0 (Go's pkg/sftp with os.O_APPEND, whose writes went over the
// file's start: "ab" at 0 made "ab23456789").
func TestAppendOffsets(t *testing.T) {
	type write struct {
		off  uint64
		data string
	}
	cases := []struct {
		name   string
		start  string
		writes []write
		want   string
	}{
		{name: "real offsets (reput)", start: "0123456789", writes: []write{{10, "ab"}, {12, "cd"}}, want: "0123456789abcd"},
		{name: "offsets from 0", start: "0123456789", writes: []write{{0, "ab"}, {2, "cd"}}, want: "0123456789abcd"},
		{name: "offsets from 0 past the old size", start: "0123", writes: []write{{0, "abcd"}, {4, "efgh"}}, want: "0123abcdefgh"},
		{name: "empty file", start: "", writes: []write{{0, "ab"}, {2, "cd"}}, want: "abcd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			d := e.drive("alice")
			e.put(d, "/a.txt", []byte(tc.start))
			c := rawSession(t, e)
			r, err := c.open("/a.txt", fWrite|fAppend, nil)
			if err != nil || r.typ != pHandle {
				t.Fatalf("open: %v %+v", err, r)
			}
			h := r.handle()
			for _, w := range tc.writes {
				if r, err := c.call(pWrite, pkt{}.str(h).u64(w.off).str(w.data)); err != nil || r.result() != fxOK {
					t.Fatalf("write at %d: %v %+v", w.off, err, r)
				}
			}
			if r, err := c.closeHandle(h); err != nil || r.result() != fxOK {
				t.Fatalf("close: %v %+v", err, r)
			}
			if got, err := e.get(d, "/a.txt"); err != nil || string(got) != tc.want {
				t.Fatalf("file holds %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	t.Run("pkg/sftp client with os.O_APPEND", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		d := e.drive("alice")
		e.put(d, "/log.txt", []byte("line 1\n"))
		c := e.client("alice", alicePW)
		for _, line := range []string{"line 2\n", "line 3\n"} {
			f, err := c.OpenFile("/log.txt", os.O_WRONLY|os.O_APPEND)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte(line)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := e.get(d, "/log.txt"); err != nil || string(got) != "line 1\nline 2\nline 3\n" {
			t.Fatalf("file holds %q (%v)", got, err)
		}
	})
}
