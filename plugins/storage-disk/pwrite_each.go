//go:build unix

package storagedisk

import (
	"os"

	"golang.org/x/sys/unix"
)

// pwriteEach writes bufs at off with one pwrite per buffer, as pwritev
// would in one call: it stops at the first short write, and reports an
// error only when nothing was written (the caller's next call meets it
// again). FreeBSD uses it; every Unix builds it, so that Linux tests it.
func pwriteEach(f *os.File, bufs [][]byte, off int64) (int, error) {
	total := 0
	for _, b := range bufs {
		n, err := unix.Pwrite(int(f.Fd()), b, off+int64(total))
		total += max(n, 0)
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
		if n < len(b) {
			break
		}
	}
	return total, nil
}
