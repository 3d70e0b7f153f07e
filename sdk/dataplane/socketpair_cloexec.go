//go:build linux || freebsd || netbsd || openbsd || dragonfly

package dataplane

import "golang.org/x/sys/unix"

// socketpair makes a close-on-exec stream socketpair in one call.
func socketpair() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
}
