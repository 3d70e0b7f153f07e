//go:build unix

package dataplane

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpairForkLock makes a close-on-exec stream socketpair without
// SOCK_CLOEXEC: under syscall.ForkLock, as the net package does, so that a
// child forked meanwhile cannot inherit the descriptors. macOS uses it;
// every Unix builds it, so that Linux tests it too.
func socketpairForkLock() ([2]int, error) {
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
