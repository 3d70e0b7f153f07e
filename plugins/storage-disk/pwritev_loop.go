//go:build unix && !(linux || darwin || openbsd)

package storagedisk

import "os"

// pwritev writes bufs at off with one pwrite each where x/sys has no
// pwritev (FreeBSD).
func pwritev(f *os.File, bufs [][]byte, off int64) (int, error) { return pwriteEach(f, bufs, off) }
