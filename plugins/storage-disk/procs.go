//go:build unix

package storagedisk

import (
	"os"
	"runtime"
)

// serveProcs is the GOMAXPROCS a served disk plugin runs with: 1, unless
// the operator set GOMAXPROCS in the environment (then the runtime's own
// reading of it stands, and serveProcs returns 0: no change).
//
// Why one: the plugin's work is syscalls (pwrite, fdatasync, pread: the
// runtime hands the P on when one blocks) and short copies between them.
// A second P buys it nothing but a spinning thread: every time a request
// wakes a goroutine the runtime wakes another thread to look for more work,
// and sysmon polls every 20 µs while any P is not idle. On a node whose
// plugin gets a put every few milliseconds (rclone's 4 transfers over
// SFTP), those wake-ups were a third of the plugin's CPU: with one P, the
// five disk plugins of a dev grid spent ~22% less CPU per 4 KiB file
// (docs/benchmarks.md, "Disk plugin and storage node per put at 4 files in
// flight").
func serveProcs(env func(string) (string, bool)) int {
	if _, set := env("GOMAXPROCS"); set {
		return 0
	}
	return 1
}

// limitProcs applies serveProcs to this process.
func limitProcs() {
	if n := serveProcs(os.LookupEnv); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}
