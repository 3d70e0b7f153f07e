//go:build unix && !linux

package dataplane

import "os"

// newArenaFile makes the arena's file where there is no memfd_create
// (macOS, the BSDs): an unlinked temporary file in os.TempDir.
func newArenaFile(name string, size int) (*os.File, error) {
	return newTempArenaFile(os.TempDir(), name, size)
}
