package conf

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNoProfile is returned (wrapped) by Load when there is no profile file.
var ErrNoProfile = errors.New("no profile")

// Error is one mistake in a profile: where it is and what is wrong.
type Error struct {
	File string // the profile's path
	Line int    // 1-based; 0 when the mistake has no line (a missing key)
	Col  int    // 1-based column of a TOML syntax error; 0 otherwise
	Key  string // dotted key with array indexes, e.g. "webdav[1].listen"; may be empty
	Msg  string // lower case, no trailing period
}

// Error formats the mistake as "FILE:LINE: KEY: MSG", with " (column N)"
// after a syntax error's message, where the column helps.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Col > 0 && e.Line > 0 {
		fmt.Fprintf(&b, " (column %d)", e.Col)
	}
	return b.String()
}

// ErrorList is every mistake found in one profile, sorted by line. Load
// returns it as its error; use errors.As to get at the entries.
type ErrorList []*Error

// Error joins the mistakes, one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Sort orders the list by line, then key, keeping insertion order for ties.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Key < l[j].Key
	})
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
