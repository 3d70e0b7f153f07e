//go:build unix && !linux

package storagedisk

import (
	"errors"
	"fmt"
	"os"
)

// packedFile would hand a packed share as a sealed memfd, which only Linux
// has. Open then fails with errors.ErrUnsupported and the host reads the
// share with Stat and ReadAt (storage.Opener).
func packedFile(pack *os.File, loc packLoc) (*os.File, error) {
	return nil, fmt.Errorf("packed share as a file of its own: no sealed memfd here: %w", errors.ErrUnsupported)
}
