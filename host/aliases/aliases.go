// Package aliases is the CLI's alias file, as Tahoe-LAFS has one: short
// names for directory caps, so a person writes "docs:2026/report.pdf"
// instead of a cap. The file is NODE/private/aliases, mode 0600 (a write
// cap in it is the authority over the directory), one "NAME: CAP" a line;
// blank lines and lines starting with "#" are kept out of the way.
//
// ParseArg tells a grid path ("NAME:path", "tarn:dir:...:/path") from a
// local one, which is how cp and friends decide a direction.
package aliases

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/identity"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/tarnfs/tarn/host/cap"
)

// Sentinel errors.
var (
	// ErrNotFound: no alias of that name.
	ErrNotFound = errors.New("no such alias")
	// ErrExist: an alias of that name exists already.
	ErrExist = errors.New("alias exists")
	// ErrBadName: not an alias name.
	ErrBadName = errors.New("bad alias name")
	// ErrSyntax: a line of the file that is not "NAME: CAP".
	ErrSyntax = errors.New("bad alias line")
)

// MaxFile bounds the alias file read.
const MaxFile = 4 << 20

// nameRE is an alias name: what conf accepts for account names and
// root_alias, so an alias can be an account's root.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidName reports whether s can name an alias.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Alias is one alias.
type Alias struct {
	Name string
	Cap  string
}

// File is the alias file of a node folder.
func File(nodeDir string) string { return filepath.Join(nodeDir, "private", "aliases") }

// Parse reads the aliases of an alias file's bytes.
func Parse(data []byte) ([]Alias, error) {
	var out []Alias
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, c, ok := strings.Cut(line, ":")
		name, c = strings.TrimSpace(name), strings.TrimSpace(c)
		if !ok || c == "" {
			return nil, fmt.Errorf("line %d: %w: want \"NAME: CAP\"", i+1, ErrSyntax)
		}
		if !ValidName(name) {
			return nil, fmt.Errorf("line %d: %w %q", i+1, ErrBadName, short(name))
		}
		if _, err := cap.Parse(c); err != nil {
			return nil, fmt.Errorf("line %d: alias %s: %w", i+1, name, err)
		}
		if j, dup := seen[name]; dup {
			return nil, fmt.Errorf("line %d: %w: %s is on line %d too", i+1, ErrSyntax, name, j)
		}
		seen[name] = i + 1
		out = append(out, Alias{Name: name, Cap: c})
	}
	return out, nil
}

// Load reads the alias file at path; a missing file has no aliases.
func Load(path string) ([]Alias, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("aliases: %w", err)
	}
	defer f.Close()
	// Aliases name write caps: the file is as private as a key.
	if st, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("aliases: %w", err)
	} else if err := identity.CheckPrivate(path, st); err != nil {
		return nil, fmt.Errorf("aliases: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, fmt.Errorf("aliases: read %s: %w", path, err)
	}
	if len(b) > MaxFile {
		return nil, fmt.Errorf("aliases: %s is over %d bytes", path, MaxFile)
	}
	list, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("aliases: %s: %w", path, err)
	}
	return list, nil
}

// Lookup finds the cap of an alias in the file at path.
func Lookup(path, name string) (string, error) {
	list, err := Load(path)
	if err != nil {
		return "", err
	}
	for _, a := range list {
		if a.Name == name {
			return a.Cap, nil
		}
	}
	return "", fmt.Errorf("%w %q (tarn alias list shows them; tarn alias add makes one)", ErrNotFound, short(name))
}

// Resolver resolves alias names through a node folder's alias file, for
// accounts.WithAliasResolver (root_alias).
func Resolver(nodeDir string) func(name string) (string, error) {
	return func(name string) (string, error) { return Lookup(File(nodeDir), name) }
}

// Add adds the alias name -> capStr to the file at path (made, with its
// folder, when missing); an existing name is ErrExist.
func Add(path, name, capStr string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w %q: want 1-64 of A-Z a-z 0-9 . _ @ - starting with a letter or digit", ErrBadName, short(name))
	}
	capStr = strings.TrimSpace(capStr)
	if _, err := cap.Parse(capStr); err != nil {
		return fmt.Errorf("alias %s: %w", name, err)
	}
	list, err := Load(path)
	if err != nil {
		return err
	}
	for _, a := range list {
		if a.Name == name {
			return fmt.Errorf("%w: %s (tarn alias rm %s first)", ErrExist, name, name)
		}
	}
	return write(path, append(list, Alias{name, capStr}))
}

// Remove removes the alias name from the file at path.
func Remove(path, name string) error {
	list, err := Load(path)
	if err != nil {
		return err
	}
	for i, a := range list {
		if a.Name == name {
			return write(path, append(list[:i], list[i+1:]...))
		}
	}
	return fmt.Errorf("%w %q", ErrNotFound, short(name))
}

// write replaces the file atomically, 0600, aliases sorted by name.
func write(path string, list []Alias) error {
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	var b bytes.Buffer
	b.WriteString("# tarn aliases: NAME: CAP. The caps are secrets; keep this file private.\n")
	for _, a := range list {
		fmt.Fprintf(&b, "%s: %s\n", a.Name, a.Cap)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("aliases: %w", err)
	}
	f, err := os.CreateTemp(dir, ".aliases-*")
	if err != nil {
		return fmt.Errorf("aliases: %w", err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b.Bytes())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("aliases: write %s: %w", path, err)
	}
	return nil
}

func short(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
