//go:build unix

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// newTempArenaFile makes an arena file without memfd_create, as macOS and
// the BSDs need: a temporary file in dir, created 0600 and close-on-exec,
// unlinked at once so that nothing is left behind whatever happens to the
// processes, and written out in full so that its blocks exist: a sparse
// file on a full disk would make a later store into the mapping fault
// (SIGBUS) instead of failing here with an error. Linux builds it too, for
// the tests.
func newTempArenaFile(dir, name string, size int) (*os.File, error) {
	f, err := os.CreateTemp(dir, tempPattern(name))
	if err != nil {
		return nil, fmt.Errorf("dataplane: arena file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("dataplane: unlink arena file %s: %w", f.Name(), err)
	}
	if err := fillZero(f, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("dataplane: size arena file to %d bytes: %w", size, err)
	}
	return f, nil
}

// fillZero writes size zero bytes at the start of f.
func fillZero(f *os.File, size int) error {
	zero := make([]byte, min(size, 1<<20))
	for off := 0; off < size; {
		n, err := f.WriteAt(zero[:min(len(zero), size-off)], int64(off))
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("short write")
		}
		off += n
	}
	return nil
}

// tempPattern keeps name's safe characters for os.CreateTemp, which refuses
// a path separator in its pattern.
func tempPattern(name string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
	if len(clean) > 64 {
		clean = clean[:64]
	}
	return clean + "-*"
}
