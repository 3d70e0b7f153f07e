//go:build linux

package api_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hangFS is a minimal FUSE file system (raw protocol on /dev/fuse) with
// one file, "f", of 10 bytes whose reads never answer until release: a
// file on a hung network or FUSE mount.
type hangFS struct {
	fd      int
	mu      sync.Mutex
	pending []uint64 // READ requests not answered
	freed   bool     // release was called: READs fail at once
	reading chan struct{}
	once    sync.Once
	done    chan struct{}
}

const fuseFileSize = 10

func mountHangFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE")
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	dir := t.TempDir()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd)
	if err := unix.Mount("tarnreview", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Skipf("mount fuse: %v", err)
	}
	h := &hangFS{fd: fd, reading: make(chan struct{}), done: make(chan struct{})}
	go h.serve()
	t.Cleanup(func() {
		h.release() // the node's read fails with EIO
		unix.Unmount(dir, unix.MNT_DETACH)
		select {
		case <-h.done:
		case <-time.After(3 * time.Second):
			t.Log("fuse server still running") // blocked in read(2): left to the end of the test binary
		}
		unix.Close(fd)
	})
	return dir
}

func (h *hangFS) reply(unique uint64, errno int32, payload []byte) {
	b := make([]byte, 16+len(payload))
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], uint32(errno))
	binary.LittleEndian.PutUint64(b[8:], unique)
	copy(b[16:], payload)
	unix.Write(h.fd, b)
}

func fuseAttr(ino uint64) []byte {
	a := make([]byte, 88)
	binary.LittleEndian.PutUint64(a[0:], ino)
	mode, size, nlink := uint32(unix.S_IFDIR|0o755), uint64(0), uint32(2)
	if ino == 2 {
		mode, size, nlink = unix.S_IFREG|0o644, fuseFileSize, 1
	}
	binary.LittleEndian.PutUint64(a[8:], size)
	binary.LittleEndian.PutUint64(a[32:], 1700000000) // mtime
	binary.LittleEndian.PutUint64(a[40:], 1700000000) // ctime
	binary.LittleEndian.PutUint32(a[60:], mode)
	binary.LittleEndian.PutUint32(a[64:], nlink)
	binary.LittleEndian.PutUint32(a[80:], 4096) // blksize
	return a
}

func (h *hangFS) serve() {
	defer close(h.done)
	buf := make([]byte, 1<<20+4096)
	for {
		n, err := unix.Read(h.fd, buf)
		if err == unix.EINTR || err == unix.ENOENT {
			continue
		}
		if err != nil || n < 40 {
			return // ENODEV: unmounted
		}
		op := binary.LittleEndian.Uint32(buf[4:])
		unique := binary.LittleEndian.Uint64(buf[8:])
		node := binary.LittleEndian.Uint64(buf[16:])
		switch op {
		case 26: // INIT
			out := make([]byte, 64)
			binary.LittleEndian.PutUint32(out[0:], 7)
			binary.LittleEndian.PutUint32(out[4:], 31)
			binary.LittleEndian.PutUint32(out[8:], binary.LittleEndian.Uint32(buf[48:])) // max_readahead
			binary.LittleEndian.PutUint32(out[20:], 1<<16)                               // max_write
			binary.LittleEndian.PutUint32(out[24:], 1)                                   // time_gran
			h.reply(unique, 0, out)
		case 1: // LOOKUP
			name := string(buf[40:n])
			if node != 1 || name != "f\x00" {
				h.reply(unique, -int32(unix.ENOENT), nil)
				continue
			}
			out := make([]byte, 40)
			binary.LittleEndian.PutUint64(out[0:], 2)
			binary.LittleEndian.PutUint64(out[16:], 3600) // entry_valid
			binary.LittleEndian.PutUint64(out[24:], 3600) // attr_valid
			h.reply(unique, 0, append(out, fuseAttr(2)...))
		case 3: // GETATTR
			out := make([]byte, 16)
			binary.LittleEndian.PutUint64(out[0:], 3600)
			h.reply(unique, 0, append(out, fuseAttr(node)...))
		case 14: // OPEN
			h.reply(unique, 0, make([]byte, 16))
		case 15: // READ: never answered until release
			h.mu.Lock()
			freed := h.freed
			if !freed {
				h.pending = append(h.pending, unique)
			}
			h.mu.Unlock()
			if freed {
				h.reply(unique, -int32(unix.EIO), nil)
			}
			h.once.Do(func() { close(h.reading) })
		case 2, 42, 36: // FORGET, BATCH_FORGET, INTERRUPT: no answer
		case 18, 25, 34: // RELEASE, FLUSH, ACCESS
			h.reply(unique, 0, nil)
		default:
			h.reply(unique, -int32(unix.ENOSYS), nil)
		}
	}
}

// release answers every READ held with EIO.
func (h *hangFS) release() {
	h.mu.Lock()
	p := h.pending
	h.pending, h.freed = nil, true
	h.mu.Unlock()
	for _, u := range p {
		h.reply(u, -int32(unix.EIO), nil)
	}
}

// TestReviewFdHungReadDoesNotHangClose: a file whose reads never return
// (a hung NFS or FUSE mount) handed by descriptor: the CLI giving up
// must not leave the node unable to stop. Server.Close waited for every
// upload in flight, and this one waits on a read nothing can interrupt.
func TestReviewFdHungReadDoesNotHangClose(t *testing.T) {
	s, _, cl := newServer(t)
	dir := mountHangFS(t)
	// Opened without the netpoller: os.Open would register the FUSE file
	// with epoll, whose FUSE_POLL is answered by hangFS in this same
	// process; a garbage collection starting meanwhile waits for the
	// thread in epoll_ctl while hangFS waits for the collection.
	fd, err := unix.Open(filepath.Join(dir, "f"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "f")
	t.Cleanup(func() { f.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := cl.PutFile(ctx, f, nil); err == nil {
		t.Fatalf("a file whose reads hang was stored as %s", c)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("Server.Close still waiting after 15 s for an upload blocked in a read")
	}
}
