package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// processAlive reports whether pid names a live process: one that can be
// opened and has not exited.
func processAlive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return err == windows.ERROR_ACCESS_DENIED // exists, not ours to open
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	const stillActive = 259 // STILL_ACTIVE
	return code == stillActive
}

// pidExists reports whether a process with this pid runs.
func pidExists(pid int) bool { return processAlive(pid) }

// terminate stops p. Windows has no SIGTERM to send another process: it is
// killed, so a node of tarn dev does not run its clean stop there.
func terminate(p *os.Process) error { return p.Kill() }
