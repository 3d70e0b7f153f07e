package storagedisk

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// packedFile hands a packed share as a file of its own: a sealed memfd
// holding a copy of its bytes (a share here is at most maxPackShare), so
// that a host reading shares through descriptors (storage.Opener) reads
// packed ones the same way. The seals make it read-only for everyone.
func packedFile(pack *os.File, loc packLoc) (*os.File, error) {
	buf := make([]byte, loc.n)
	if _, err := readPacked(pack, loc, buf, 0); err != nil && len(buf) > 0 {
		return nil, err
	}
	fd, err := unix.MemfdCreate("tarn-packed-share", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "packed share")
	if _, err := f.WriteAt(buf, 0); err != nil { // the offset stays at 0
		f.Close()
		return nil, fmt.Errorf("memfd: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd seals: %w", err)
	}
	return f, nil
}
