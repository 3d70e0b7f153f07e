//go:build unix

package dataplane

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Both ways of making the socketpair give two connected, close-on-exec
// ends.
func TestSocketpairCloexec(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func() ([2]int, error)
	}{
		{"this system's", socketpair},
		{"under ForkLock", socketpairForkLock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := tc.make()
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[0])
			defer unix.Close(fds[1])
			for _, fd := range fds {
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				if err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Fatalf("fd %d: flags %#x, %v: want FD_CLOEXEC", fd, flags, err)
				}
			}
			if _, err := unix.Write(fds[0], []byte("x")); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			if n, err := unix.Read(fds[1], b); n != 1 || err != nil || b[0] != 'x' {
				t.Fatalf("read from the other end: %d %q %v", n, b, err)
			}
		})
	}
}
