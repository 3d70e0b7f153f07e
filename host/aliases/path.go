package aliases

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tarnfs/tarn/host/cap"
)

// ErrBadPath: a grid path argument that cannot be used.
var ErrBadPath = errors.New("bad grid path")

// Arg is a command-line path: a local path, or a path under a directory
// cap (named by an alias or given whole).
type Arg struct {
	// Local is the local path when the argument is not a grid path.
	Local string
	// Alias is the alias the grid path named ("" for a cap given whole).
	Alias string
	// Root is the cap of the root: a directory cap for a path under it,
	// or any cap when Path is "/" and the argument was a bare cap.
	Root string
	// Path is the slash path under Root, "/" for the root itself.
	Path string
	// Trailing: the argument ended in "/" (cp: "into this directory").
	Trailing bool
}

// IsGrid reports whether the argument is a grid path.
func (a Arg) IsGrid() bool { return a.Root != "" }

// String is the argument as a person wrote it (an alias form, or the cap
// shortened: caps are secrets).
func (a Arg) String() string {
	switch {
	case !a.IsGrid():
		return a.Local
	case a.Alias != "":
		return a.Alias + ":" + strings.TrimPrefix(a.Path, "/")
	default:
		return shortCap(a.Root) + ":" + a.Path
	}
}

func shortCap(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// Join is the grid path of name inside a (a directory).
func (a Arg) Join(name string) Arg {
	b := a
	b.Path = strings.TrimSuffix(a.Path, "/") + "/" + name
	b.Trailing = false
	return b
}

// ParseArg reads a command-line path argument:
//
//	NAME:path/in/dir      under the alias NAME (lookup gives its cap)
//	NAME:                 the alias's directory itself
//	tarn:dir:...:/path    under a directory cap (also tarn:dir:.../path)
//	tarn:chk:...          a bare cap (Path "/")
//	anything else         a local path (./a:b for a local name with a colon)
//
// lookup resolves alias names (nil: aliases are refused).
func ParseArg(s string, lookup func(name string) (string, error)) (Arg, error) {
	if s == "" {
		return Arg{}, fmt.Errorf("%w: empty path", ErrBadPath)
	}
	if strings.HasPrefix(s, cap.Prefix) {
		return parseCapArg(s)
	}
	name, rest, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(name, "/") || name == "" || !ValidName(name) {
		return Arg{Local: s}, nil
	}
	if lookup == nil {
		return Arg{}, fmt.Errorf("%w %q: no alias file", ErrNotFound, short(name))
	}
	c, err := lookup(name)
	if err != nil {
		return Arg{}, fmt.Errorf("%s: %w (for a local file of that name, write ./%s)", short(s), err, short(s))
	}
	a := Arg{Alias: name, Root: c, Path: "/" + strings.TrimLeft(rest, "/"), Trailing: strings.HasSuffix(rest, "/")}
	a.Path = cleanSlash(a.Path)
	return a, nil
}

// parseCapArg splits "CAP", "CAP:/path" or "CAP/path".
func parseCapArg(s string) (Arg, error) {
	capPart, rest, hasPath := strings.Cut(s, "/")
	capPart = strings.TrimSuffix(capPart, ":")
	c, err := cap.Parse(capPart)
	if err != nil {
		return Arg{}, fmt.Errorf("%w: %w", ErrBadPath, err)
	}
	a := Arg{Root: c.String(), Path: "/"}
	if hasPath {
		switch c.(type) {
		case cap.DirWrite, cap.DirRead:
		default:
			return Arg{}, fmt.Errorf("%w: a path under a %s cap: only directory caps have paths", ErrBadPath, c.Kind())
		}
		a.Path = cleanSlash("/" + rest)
		a.Trailing = strings.HasSuffix(rest, "/")
	}
	return a, nil
}

// cleanSlash drops a trailing slash (the root stays "/"); the node checks
// components ("..", empty ones) and refuses bad ones.
func cleanSlash(p string) string {
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}
