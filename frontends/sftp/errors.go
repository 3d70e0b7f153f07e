package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

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
	return &statusError{fx: fxErrors[code], msg: oneLineUTF8(fmt.Sprintf("%s %s: %s", op, showPath(path), reason))}
}

// showPath is p as a status message names it: as it is, or quoted
// (strconv.Quote, as vdrive's errors quote names) when it holds a
// control character (a newline) or is not valid UTF-8. The SFTP spec's
// message is UTF-8, and clients print it as one line.
func showPath(p string) string {
	if plain(p) {
		return p
	}
	return strconv.Quote(p)
}

// plain reports whether s is valid UTF-8 without control characters or
// line and paragraph separators.
func plain(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// oneLineUTF8 is msg made one line of valid UTF-8 whatever a reason from
// below holds: bytes that are not UTF-8 and control characters are
// written as Go escapes (\xff, \n).
func oneLineUTF8(msg string) string {
	if plain(msg) {
		return msg
	}
	var b strings.Builder
	for i, r := range msg {
		switch {
		case r == utf8.RuneError:
			if _, w := utf8.DecodeRuneInString(msg[i:]); w == 1 {
				fmt.Fprintf(&b, "\\x%02x", msg[i])
				continue
			}
			b.WriteRune(r) // U+FFFD itself
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unsupported is the error of a request tarn does not carry out.
func unsupported(op, path, why string) error {
	return &statusError{fx: xsftp.ErrSSHFxOpUnsupported, msg: oneLineUTF8(fmt.Sprintf("%s %s: not supported: %s", op, showPath(path), why))}
}
