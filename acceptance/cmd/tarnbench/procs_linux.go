package main

import "syscall"

// gridProcAttr puts tarn dev in its own process group, which stop kills
// whole, and has it get SIGTERM should tarnbench die.
func gridProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

// killPid sends SIGKILL to pid.
func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
