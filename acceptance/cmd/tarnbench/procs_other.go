//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// tarnbench measures CPU, RSS and load through /proc, which only Linux
// has: elsewhere it stops at once with one line (its tests still build).
func init() {
	if !testing.Testing() {
		fmt.Fprintf(os.Stderr, "tarnbench: runs on Linux only (it measures through /proc), not on %s\n", runtime.GOOS)
		os.Exit(2)
	}
}

func gridProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(pid int) { killPid(pid) }

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

func selfCPU() time.Duration { return 0 }
