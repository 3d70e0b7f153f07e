//go:build !unix

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errNoArena says why there is no arena: this system has no way, that this
// package knows, to share a mapping through an inherited descriptor.
var errNoArena = fmt.Errorf("dataplane: no shared-memory arena on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func newArenaFile(name string, size int) (*os.File, error) { return nil, errNoArena }

func mapArena(f *os.File, size int) (*Arena, error) {
	f.Close()
	return nil, errNoArena
}

func unmap(mem []byte) {}
