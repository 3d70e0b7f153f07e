package vdrive

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/tarnfs/tarn/host/dirnode"
)

// Sentinel errors (errors.Is). ErrNotExist, ErrExist and ErrInvalid are
// the io/fs ones themselves, so os.IsNotExist and os.IsExist hold too (as
// golang.org/x/net/webdav checks); the others match an io/fs error or an
// errno as noted.
var (
	ErrNotExist = fs.ErrNotExist
	ErrExist    = fs.ErrExist
	ErrInvalid  = fs.ErrInvalid
	// ErrNotDir: a path component, or a Rename target, is not a directory
	// (syscall.ENOTDIR).
	ErrNotDir error = &kindError{"not a directory", syscall.ENOTDIR, nil}
	// ErrIsDir: a file operation on a directory (syscall.EISDIR).
	ErrIsDir error = &kindError{"is a directory", syscall.EISDIR, nil}
	// ErrNotEmpty: Remove of, or Rename onto, a directory with entries
	// (syscall.ENOTEMPTY).
	ErrNotEmpty error = &kindError{"directory not empty", syscall.ENOTEMPTY, nil}
	// ErrReadOnly: a write through a read cap (fs.ErrPermission,
	// syscall.EROFS).
	ErrReadOnly error = &kindError{"read-only", fs.ErrPermission, syscall.EROFS}
	// ErrConflict: a concurrent change made the operation impossible as
	// asked (the source of a cross-directory Rename changed under it).
	ErrConflict error = &kindError{"changed concurrently", syscall.EAGAIN, nil}
	// ErrBadName: a path or name that can never exist: "..", ".", empty
	// components ("a//b"), NUL, invalid UTF-8, over-long (fs.ErrInvalid,
	// syscall.EINVAL). A new name over MaxNewNameLen bytes is refused with
	// an error that matches both it and ErrNameTooLong (names.go).
	ErrBadName error = &kindError{"bad name", fs.ErrInvalid, syscall.EINVAL}
	// ErrCorrupt: a directory whose bytes are not a valid directory (a
	// damaged or hostile writer); frontends answer with an I/O error.
	ErrCorrupt = dirnode.ErrFormat
)

// kindError is a sentinel that also matches the given standard errors.
type kindError struct {
	msg string
	is  error
	is2 error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Is(target error) bool {
	return target != nil && (target == e.is || target == e.is2)
}

var _ error = (*kindError)(nil)

// pathErr wraps err for op on path (shown: quoted when it is not
// printable UTF-8).
func pathErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: shown(path), Err: err}
}
