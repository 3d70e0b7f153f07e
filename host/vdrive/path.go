package vdrive

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tarnfs/tarn/host/dirnode"
)

// MaxPathLen bounds a path in bytes, like PATH_MAX.
const MaxPathLen = 4096

// MaxDepth bounds the components of a path.
const MaxDepth = 256

// SplitPath parses a slash path under the root into clean (NFC)
// components. "", "/" are the root; one leading and one trailing "/" are
// allowed. Empty components ("a//b"), "." and "..", NUL, invalid UTF-8 and
// over-long paths or names are refused with ErrBadName. Names are
// accepted up to dirnode.MaxNameLen (1,024) bytes, so that entries older
// versions wrote stay reachable; operations that make a name check it
// against MaxNewNameLen (255) too (CheckNewName).
func SplitPath(p string) ([]string, error) {
	if len(p) > MaxPathLen {
		return nil, fmt.Errorf("%w: path of %d bytes, more than %d", ErrBadName, len(p), MaxPathLen)
	}
	s := strings.TrimPrefix(p, "/")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		if p == "" || p == "/" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: empty path component in %q", ErrBadName, short(p))
	}
	parts := strings.Split(s, "/")
	if len(parts) > MaxDepth {
		return nil, fmt.Errorf("%w: %d path components, more than %d", ErrBadName, len(parts), MaxDepth)
	}
	for i, c := range parts {
		n, err := dirnode.CleanName(c)
		if err != nil {
			if c == "" {
				return nil, fmt.Errorf("%w: empty path component in %q", ErrBadName, short(p))
			}
			return nil, badName(c, err)
		}
		parts[i] = n
	}
	return parts, nil
}

// JoinPath is the canonical path of components ("/a/b", "/" for none).
func JoinPath(parts []string) string { return "/" + strings.Join(parts, "/") }

func short(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// nfcLen is the length of s in NFC, or of s as it is when normalising it
// would cost more than a name is worth.
func nfcLen(s string) int {
	if len(s) > 4*dirnode.MaxNameLen || !utf8.ValidString(s) {
		return len(s)
	}
	return len(norm.NFC.String(s))
}

// badName is dirnode.CleanName's refusal of name as ErrBadName, said
// once ("bad name: \"..\" is reserved", not "bad name: bad entry name:
// ..."); a name over dirnode.MaxNameLen is a *NameTooLongError
// (ENAMETOOLONG, as a local file system answers any operation on a name
// over NAME_MAX).
func badName(name string, err error) error {
	if errors.Is(err, dirnode.ErrTooLong) {
		return &NameTooLongError{Len: nfcLen(name)}
	}
	return fmt.Errorf("%w: %s", ErrBadName, strings.TrimPrefix(err.Error(), dirnode.ErrBadName.Error()+": "))
}
