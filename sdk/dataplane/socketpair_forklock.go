//go:build unix && !(linux || freebsd || netbsd || openbsd || dragonfly)

package dataplane

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair makes a close-on-exec stream socketpair where SOCK_CLOEXEC does
// not exist (macOS): under syscall.ForkLock, as the net package does, so
// that a child forked meanwhile cannot inherit the descriptors.
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fds, err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	return fds, nil
}
