package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"

	xsftp "github.com/pkg/sftp"

	"github.com/tarnfs/tarn/host/vdrive"
)

// Errors of the frontend itself (errors.Is).
var (
	// ErrUnsupported: a request tarn cannot carry out on a vdrive
	// (symbolic and hard links).
	ErrUnsupported = errors.New("not supported")
	// ErrReadOnlyAccount: a write by an account the profile marks
	// read_only.
	ErrReadOnlyAccount = errors.New("read-only account")
)

// statusError is what a handler returns to pkg/sftp: the SSH_FX status
// code a client sees and a one-line message. pkg/sftp takes the code
// through errors.As (fxerr) and the message from Error().
type statusError struct {
	fx  error // a pkg/sftp fxerr (ErrSSHFx...)
	msg string
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.fx }

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02).
const (
	fxEOF              = 1
	fxNoSuchFile       = 2
	fxPermissionDenied = 3
	fxFailure          = 4
	fxBadMessage       = 5
	fxOpUnsupported    = 8
)

var fxErrors = map[uint32]error{
	fxEOF:              xsftp.ErrSSHFxEOF,
	fxNoSuchFile:       xsftp.ErrSSHFxNoSuchFile,
	fxPermissionDenied: xsftp.ErrSSHFxPermissionDenied,
	fxFailure:          xsftp.ErrSSHFxFailure,
	fxBadMessage:       xsftp.ErrSSHFxBadMessage,
	fxOpUnsupported:    xsftp.ErrSSHFxOpUnsupported,
}

// statusCode is the status OpenSSH's sftp-server answers for the errno
// that err stands for (its errno_to_portable): ENOENT and ENOTDIR are "no
// such file"; EPERM and EACCES "permission denied" (a read-only account
// is answered as `sftp-server -R` does); EINVAL and ENAMETOOLONG "bad
// message"; ENOSYS "unsupported"; everything else "failure".
func statusCode(err error) uint32 {
	switch {
	case errors.Is(err, io.EOF):
		return fxEOF
	case errors.Is(err, ErrUnsupported):
		return fxOpUnsupported
	case errors.Is(err, ErrReadOnlyAccount), errors.Is(err, vdrive.ErrReadOnly), errors.Is(err, fs.ErrPermission):
		return fxPermissionDenied
	case errors.Is(err, vdrive.ErrNotDir), errors.Is(err, fs.ErrNotExist):
		return fxNoSuchFile
	case errors.Is(err, vdrive.ErrBadName), errors.Is(err, fs.ErrInvalid), errors.Is(err, syscall.EINVAL):
		return fxBadMessage
	default:
		return fxFailure
	}
}

// kindText is the short reason a client is shown for err's kind.
func kindText(err error) string {
	switch {
	case errors.Is(err, ErrUnsupported):
		return "not supported"
	case errors.Is(err, ErrReadOnlyAccount), errors.Is(err, vdrive.ErrReadOnly):
		return "permission denied: read-only"
	case errors.Is(err, vdrive.ErrNotDir):
		return "not a directory"
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, vdrive.ErrIsDir):
		return "is a directory"
	case errors.Is(err, vdrive.ErrNotEmpty):
		return "directory not empty"
	case errors.Is(err, fs.ErrExist):
		return "file exists"
	case errors.Is(err, vdrive.ErrNameTooLong):
		// "name too long: N bytes (UTF-8, NFC), new names are limited to
		// 255": the length is the client's to fix, not the name's kind.
		var tl *vdrive.NameTooLongError
		if errors.As(err, &tl) {
			return tl.Error()
		}
		return "name too long"
	case errors.Is(err, vdrive.ErrBadName):
		return "bad name"
	case errors.Is(err, vdrive.ErrConflict):
		return "changed concurrently, try again"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return ""
}

// toStatus turns a handler's error into what the client sees: the status
// code OpenSSH would answer for it and "op path: reason". Errors of known
// kinds say only their kind (never a cap); others, from the grid, say
// what failed.
func toStatus(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var se *statusError
	if errors.As(err, &se) {
		return err
	}
	code := statusCode(err)
	reason := kindText(err)
	if reason == "" {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err.Error()
		} else {
			reason = err.Error()
		}
	}
	return &statusError{fx: fxErrors[code], msg: fmt.Sprintf("%s %s: %s", op, path, reason)}
}

// unsupported is the error of a request tarn does not carry out.
func unsupported(op, path, why string) error {
	return &statusError{fx: xsftp.ErrSSHFxOpUnsupported, msg: fmt.Sprintf("%s %s: not supported: %s", op, path, why)}
}
