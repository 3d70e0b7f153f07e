package filelock

import (
	"os"

	"golang.org/x/sys/windows"
)

// ErrWouldBlock is what TryLock's error wraps (or is) when another open
// file holds the lock.
var ErrWouldBlock error = windows.ERROR_LOCK_VIOLATION

// Lock waits for the exclusive lock on f.
func Lock(f *os.File) error { return lock(f, windows.LOCKFILE_EXCLUSIVE_LOCK) }

// TryLock takes the exclusive lock on f or fails at once, with an error
// for which errors.Is(err, ErrWouldBlock) when another holds it.
func TryLock(f *os.File) error {
	return lock(f, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY)
}

// lock locks one byte far past any data (offset 2^63-2^32) instead of the
// whole file: a Windows lock is mandatory, and one over the data would
// keep the holder's own other handles, and readers, from its bytes. Every
// locker locks that same byte, so they exclude one another as flock does.
func lock(f *os.File, flags uint32) error {
	ol := &windows.Overlapped{Offset: 0, OffsetHigh: 0x7fffffff}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, ol)
}
