//go:build linux || darwin || openbsd

package storagedisk

import (
	"os"

	"golang.org/x/sys/unix"
)

// pwritev writes bufs at off in one system call.
func pwritev(f *os.File, bufs [][]byte, off int64) (int, error) {
	return unix.Pwritev(int(f.Fd()), bufs, off)
}
