package vdrive

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync makes f's data durable, and its size, without the rest of
// its metadata (times).
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
