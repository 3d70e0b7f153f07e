package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/aliases"
)

// TestParseArgDotComponents: a "." or ".." in a grid path is refused by
// the CLI, naming the argument, before any request: such a path used to
// leave its alias through the URL's dot-segment removal ("home:../../etc"
// reached GET /v1/etc; "home:a/../b" silently made "home:b"). Local paths
// keep their "..", and "a//b" still means "a/b".
func TestParseArgDotComponents(t *testing.T) {
	const dircap = "tarn:dir:6fglmasv2lv7b6zeyk3f53cvxacbyuvgwjndr32nuu3dtffow6ia"
	dir := t.TempDir()
	if err := aliases.Add(aliases.File(dir), "home", dircap); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, arg string
		path      string // the grid path when accepted
		local     string // the local path when accepted as one
		refused   string // in the error when refused
	}{
		{"parent at the end", "home:a/..", "", "", `home:a/..: bad grid path: ".." is not a name`},
		{"parent above the alias", "home:../../etc", "", "", `home:../../etc: bad grid path: ".."`},
		{"parent in the middle", "home:a/../b", "", "", `".." is not a name`},
		{"self", "home:./a", "", "", `"." is not a name`},
		{"under a dircap", dircap + "/a/../b", "", "", `".." is not a name`},
		{"dots in a name", "home:a/..b/c..", "/a/..b/c..", "", ""},
		{"three dots", "home:.../x", "/.../x", "", ""},
		{"double slash", "home:a//b", "/a//b", "", ""},
		{"alias root", "home:", "/", "", ""},
		{"local parent", "../out.bin", "", "../out.bin", ""},
		{"local with colon", "./a:b", "", "./a:b", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseArg(dir, tc.arg)
			if tc.refused != "" {
				if err == nil || !errors.Is(err, aliases.ErrBadPath) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("parseArg(%q) = %+v, %v; want an ErrBadPath with %q", tc.arg, a, err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArg(%q): %v", tc.arg, err)
			}
			if a.Path != tc.path || a.Local != tc.local {
				t.Fatalf("parseArg(%q) = path %q local %q, want %q %q", tc.arg, a.Path, a.Local, tc.path, tc.local)
			}
		})
	}
}

// TestLocalName: names a grid folder lists become local file names only
// when they stay inside the destination on this system (on Windows a grid
// name may hold "\" or be "CON").
func TestLocalName(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"file.txt", true},
		{"..b", true},
		{"..", false},
		{"", false},
		{"/etc/passwd", false},
	} {
		got, err := localJoin(dst, tc.name)
		if tc.ok != (err == nil) {
			t.Fatalf("localJoin(%q) = %q, %v; want ok %v", tc.name, got, err, tc.ok)
		}
		if tc.ok && filepath.Dir(got) != dst {
			t.Fatalf("localJoin(%q) = %q, not in %s", tc.name, got, dst)
		}
	}
}
