//go:build unix

package filelock

import (
	"os"
	"syscall"
)

// ErrWouldBlock is what TryLock's error wraps (or is) when another open
// file holds the lock.
var ErrWouldBlock error = syscall.EWOULDBLOCK

// Lock waits for the exclusive lock on f.
func Lock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

// TryLock takes the exclusive lock on f or fails at once, with an error
// for which errors.Is(err, ErrWouldBlock) when another holds it. The error
// is the system's own, unwrapped.
func TryLock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
