package sftp

import "testing"

// TestReview7bAppendStaleSize: sshfs opens with APPEND for O_APPEND and
// writes where the kernel's cached size ends; when another client has
// appended since, that is below the size at open. The write must land
// at the end (as with sftp-server), not that far past it after zeros:
// `echo x >> f` on an sshfs mount holding a stale size of 10 for a file
// of 20 made "0123456789ABCDEFGHIJ" + 10 zero bytes + "x\n".
func TestReview7bAppendStaleSize(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	e.put(d, "/log.txt", []byte("0123456789ABCDEFGHIJ"))
	c := rawSession(t, e)
	r, err := c.open("/log.txt", fWrite|fAppend, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open: %v %+v", err, r)
	}
	h := r.handle()
	for _, w := range []struct {
		off  uint64
		data string
	}{{10, "x\n"}, {12, "y\n"}} {
		if r, err := c.call(pWrite, pkt{}.str(h).u64(w.off).str(w.data)); err != nil || r.result() != fxOK {
			t.Fatalf("write at %d: %v %+v", w.off, err, r)
		}
	}
	if r, err := c.closeHandle(h); err != nil || r.result() != fxOK {
		t.Fatalf("close: %v %+v", err, r)
	}
	if got, err := e.get(d, "/log.txt"); err != nil || string(got) != "0123456789ABCDEFGHIJx\ny\n" {
		t.Fatalf("file holds %q (%v)", got, err)
	}
}
