//go:build unix

package storage

import "golang.org/x/sys/unix"

// hungUp polls the liveness pipe's read end without waiting: the plugin is
// gone once its write end reads as hung up.
func hungUp(fd uintptr) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	for err == unix.EINTR {
		n, err = unix.Poll(pfd, 0)
	}
	return err != nil || (n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0)
}
