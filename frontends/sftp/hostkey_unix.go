//go:build unix

package sftp

import (
	"fmt"
	"os"
)

// hostKeyPrivate refuses a host key file that group or others may read.
func hostKeyPrivate(path string, st os.FileInfo) error {
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("host key %s: mode %04o lets others read it; chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return nil
}
