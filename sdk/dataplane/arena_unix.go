//go:build unix

package dataplane

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func mapArena(f *os.File, size int) (*Arena, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dataplane: mmap arena: %w", err)
	}
	return &Arena{file: f, mem: mem, free: []extent{{0, size}}}, nil
}

func unmap(mem []byte) { unix.Munmap(mem) }
