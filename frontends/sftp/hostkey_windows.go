package sftp

import (
	"fmt"
	"os"

	"github.com/tarnfs/tarn/host/identity"
)

// hostKeyPrivate refuses a host key file whose access list lets others
// read it (Windows has no mode bits: identity.CheckPrivate says what is
// checked instead).
func hostKeyPrivate(path string, st os.FileInfo) error {
	if err := identity.CheckPrivate(path, st); err != nil {
		return fmt.Errorf("host key: %w", err)
	}
	return nil
}
