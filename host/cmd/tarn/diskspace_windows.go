package main

import (
	"golang.org/x/sys/windows"

	"github.com/tarnfs/tarn/conf"
)

// diskSpace is the size of the volume holding dir and what of it this
// user may still use.
func diskSpace(dir string) (total, free conf.Size, err error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, 0, err
	}
	var avail, size, all uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &size, &all); err != nil {
		return 0, 0, err
	}
	return conf.Size(size), conf.Size(avail), nil
}
