// Package dirnode is tarn's directory format: the bytes of a directory's
// mutable root (an index of buckets) and of its entry buckets (sorted,
// encoded entries, kept inline in the root or as immutable chunks), the
// encryption of child write caps under a key only write-cap holders can
// derive, and transactional edits that touch one bucket per changed name.
// It knows nothing of servers: chunks go through the small Chunks
// interface, so host/vdrive plugs in the grid. docs/formats.md
// ("Directories") is the specification.
package dirnode

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameLen bounds an entry name in bytes (after NFC normalisation). It is
// generous (Linux allows 255) yet keeps a hostile name from bloating a
// bucket.
const MaxNameLen = 1024

// ErrBadName: a name that can never be an entry name.
var ErrBadName = errors.New("bad entry name")

// ErrTooLong: a name over MaxNameLen bytes after NFC (or over four times
// that as given). It is an ErrBadName too; callers that answer "name too
// long" (ENAMETOOLONG) rather than "bad name" branch on it.
var ErrTooLong = fmt.Errorf("%w: too long", ErrBadName)

// CleanName checks name and returns it in NFC, the only form stored. It
// refuses names that are empty, ".", "..", contain "/" or NUL, are not
// UTF-8, or are longer than MaxNameLen bytes.
func CleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty", ErrBadName)
	case name == "." || name == "..":
		return "", fmt.Errorf("%w: %q is reserved", ErrBadName, name)
	case strings.ContainsRune(name, '/'):
		return "", fmt.Errorf("%w: %q contains \"/\"", ErrBadName, short(name))
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: %q contains NUL", ErrBadName, short(name))
	case !utf8.ValidString(name):
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrBadName, short(name))
	case len(name) > 4*MaxNameLen:
		// Refuse before normalising: NFC never shrinks text by 4x.
		return "", fmt.Errorf("%w: %d bytes, more than %d", ErrTooLong, len(name), MaxNameLen)
	}
	n := norm.NFC.String(name)
	if len(n) > MaxNameLen {
		return "", fmt.Errorf("%w: %d bytes (NFC), more than %d", ErrTooLong, len(n), MaxNameLen)
	}
	return n, nil
}

// validStored reports whether a decoded name is one CleanName would keep
// unchanged.
func validStored(name string) bool {
	n, err := CleanName(name)
	return err == nil && n == name
}

func short(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
