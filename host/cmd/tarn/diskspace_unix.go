//go:build unix

package main

import (
	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/conf"
)

// diskSpace is the size of the file system holding dir and what of it an
// unprivileged process may still use.
func diskSpace(dir string) (total, free conf.Size, err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, 0, err
	}
	return conf.Size(uint64(fs.Blocks) * uint64(fs.Bsize)), conf.Size(uint64(fs.Bavail) * uint64(fs.Bsize)), nil
}
