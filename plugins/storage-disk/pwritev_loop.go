//go:build unix && !(linux || darwin || openbsd)

package storagedisk

import (
	"os"

	"golang.org/x/sys/unix"
)

// pwritev writes bufs at off with one pwrite each where x/sys has no
// pwritev (FreeBSD). Like pwritev it reports an error only when nothing
// was written; the caller's next call meets it again.
func pwritev(f *os.File, bufs [][]byte, off int64) (int, error) {
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
