package storagedisk

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
)

func (d *Disk) putUnnamed(ref storage.Ref, p string, data []byte) error {
	dir := filepath.Dir(p)
	mu := d.stripe(ref.Index)
	mu.Lock()
	err := mkdirDurable(dir)
	mu.Unlock()
	if err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return errNoTmpfile // no support, or the folder went meanwhile
	}
	f := os.NewFile(uintptr(fd), "unnamed share file in "+dir)
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if err := mkdirDurable(dir); err != nil { // a Delete may have removed it
		return err
	}
	if d.packed(ref) {
		return storage.ErrExists
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW)
	switch {
	case errors.Is(err, unix.EEXIST):
		return storage.ErrExists
	case errors.Is(err, unix.ENOENT):
		return errNoTmpfile // no /proc
	case err != nil:
		return err
	}
	return syncDir(dir)
}
