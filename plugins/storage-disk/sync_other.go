//go:build unix && !linux

package storagedisk

import "os"

// fdatasync makes f's data durable. Where there is no fdatasync it is
// (*os.File).Sync: fsync, and on macOS F_FULLFSYNC, which also flushes
// the drive's cache as a durable append needs there.
func fdatasync(f *os.File) error { return f.Sync() }
