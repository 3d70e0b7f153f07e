//go:build unix

package identity

import (
	"fmt"
	"os"
)

// CheckPrivate refuses a file holding a key, a secret or a write cap that
// group or others may read (ErrTooOpen), saying how to fix it.
func CheckPrivate(path string, st os.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is %w (mode %04o): run `chmod 600 %s`", path, ErrTooOpen, perm, path)
	}
	return nil
}
