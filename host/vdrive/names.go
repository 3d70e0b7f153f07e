package vdrive

import (
	"context"
	"fmt"
	"io/fs"
	"syscall"
)

// MaxNewNameLen bounds the name of a new entry in bytes of UTF-8 after NFC:
// 255, NAME_MAX of ext4, XFS, btrfs, APFS and (in UTF-16 units, which a
// name of at most 255 bytes never exceeds) NTFS. A longer name could be
// stored (dirnode.MaxNameLen is 1,024, and entries that long written by
// older versions stay readable, listable, removable and renamable), but no
// common local file system could hold a copy of it: rclone, sftp, davfs
// and Windows would fail to bring it back. So every operation that makes
// a name (Create, Put, Mkdir, Rename's target, Link, LinkMany) refuses a
// longer one, before touching the grid.
const MaxNewNameLen = 255

// ErrNameTooLong: a new entry name longer than MaxNewNameLen. The error
// returned also matches ErrBadName (so frontends answer as for any bad
// name: WebDAV 400, SFTP SSH_FX_BAD_MESSAGE as OpenSSH does for
// ENAMETOOLONG), fs.ErrInvalid and syscall.ENAMETOOLONG; errors.As gives a
// *NameTooLongError with the length.
var ErrNameTooLong error = &kindError{"name too long", syscall.ENAMETOOLONG, nil}

// NameTooLongError is the error of a new name over MaxNewNameLen bytes.
type NameTooLongError struct {
	// Len is the name's length in bytes (UTF-8, NFC).
	Len int
}

func (e *NameTooLongError) Error() string {
	return fmt.Sprintf("name too long: %d bytes (UTF-8, NFC), new names are limited to %d", e.Len, MaxNewNameLen)
}

// Is matches ErrNameTooLong and what a bad name matches.
func (e *NameTooLongError) Is(target error) bool {
	switch target {
	case ErrNameTooLong, ErrBadName, fs.ErrInvalid, syscall.EINVAL, syscall.ENAMETOOLONG:
		return true
	}
	return false
}

var _ error = (*NameTooLongError)(nil)

// CheckNewName refuses a name clean (NFC, as SplitPath and
// dirnode.CleanName give it) that is too long for a new entry. It counts
// bytes, not runes: 85 three-byte runes are 255 bytes and pass.
func CheckNewName(clean string) error {
	if len(clean) > MaxNewNameLen {
		return &NameTooLongError{Len: len(clean)}
	}
	return nil
}

// CheckNewPath is CheckNewName of the last component of the slash path p
// (SplitPath's errors for a bad path; nil for the root): for a frontend
// that refuses a request before its body is read.
func CheckNewPath(p string) error {
	_, name, ok, err := locate(p)
	if err != nil || !ok {
		return err
	}
	return CheckNewName(name)
}

// writableNew is writable for an operation that makes a new name at p:
// an over-long name is refused before the parent is looked up.
func (d *Drive) writableNew(ctx context.Context, op, p string) (dirRef, string, error) {
	if d.root.w != nil {
		if err := CheckNewPath(p); err != nil {
			return dirRef{}, "", pathErr(op, p, err)
		}
	}
	return d.writable(ctx, op, p)
}
