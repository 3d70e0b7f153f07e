package dataplane

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// newArenaFile makes the arena's memfd: anonymous memory that an inherited
// descriptor lets the plugin map too.
func newArenaFile(name string, size int) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("dataplane: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("dataplane: size arena to %d bytes: %w", size, err)
	}
	return f, nil
}
