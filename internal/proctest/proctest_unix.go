//go:build unix

package proctest

import (
	"syscall"
	"time"
)

// Kill sends SIGKILL to pid.
func Kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// Exists reports whether signal 0 reaches pid (a zombie too).
func Exists(pid int) bool { return syscall.Kill(pid, 0) == nil }

// CPUTime is the user and system time this process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
