//go:build linux

package api_test

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPutFileNonblockingDescriptor: a descriptor that arrives O_NONBLOCK
// (as the sender's Go runtime leaves a file of a pollable file system,
// FUSE) is made blocking before the node reads it, so the node never
// registers a user's file with its netpoller (epoll_ctl on a FUSE file
// waits on the FUSE server outside a system call the scheduler sees).
// The flag lives in the open file description the sender shares.
func TestPutFileNonblockingDescriptor(t *testing.T) {
	_, files, cl := newGridServer(t)
	b := randomBytes(70<<10, 7)
	f := writeFile(t, t.TempDir(), "nb", b)
	if err := unix.SetNonblock(int(f.Fd()), true); err != nil {
		t.Fatal(err)
	}
	c, err := cl.PutFile(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !files.readerAt() {
		t.Fatal("the node got a body, not the file")
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Fatal("the node left the uploaded descriptor O_NONBLOCK (registered with its netpoller)")
	}
	sized, err := cl.Put(context.Background(), bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if c != sized {
		t.Fatalf("caps differ: by descriptor %s, body %s", c, sized)
	}
}
