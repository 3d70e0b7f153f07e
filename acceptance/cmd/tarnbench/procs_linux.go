package main

import (
	"syscall"
	"time"
)

// gridProcAttr puts tarn dev in its own process group, which stop kills
// whole, and has it get SIGTERM should tarnbench die.
func gridProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

// killPid sends SIGKILL to pid.
func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// selfCPU is the CPU time this process has used so far, from getrusage:
// its microseconds, not /proc's 10 ms ticks, which an in-process client's
// few milliseconds for a small transfer can fall between (CI once read 0).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
