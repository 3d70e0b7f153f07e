//go:build unix && !linux

package storagedisk

import "github.com/tarnfs/tarn/sdk/storage"

// putUnnamed needs O_TMPFILE and /proc/self/fd, which only Linux has: Put
// writes a temp file in tmp/ and renames it instead.
func (d *Disk) putUnnamed(ref storage.Ref, p string, data []byte) error { return errNoTmpfile }
