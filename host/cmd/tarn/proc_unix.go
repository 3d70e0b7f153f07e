//go:build unix

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// processAlive reports whether pid names a live process: one that exists
// and is not a zombie (a node killed moments ago may still be one).
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust kill
	}
	// The state follows the command name, which is in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

// pidExists reports whether a process with this pid exists (a zombie too).
func pidExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// terminate asks p to stop cleanly (SIGTERM).
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
