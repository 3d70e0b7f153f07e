package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tarnfs/tarn/host/aliases"
)

// parseArg reads a command-line path as aliases.ParseArg does, and refuses
// a grid path with a "." or ".." component. The node never saw them: the
// API client's URL went through HTTP's dot-segment removal first, so
// "home:a/../b" made "home:b", and "home:../../etc" left the alias and
// reached another route ("no such endpoint: GET /v1/etc"; rm answered
// "bad cap: vdrive root cap"). A grid directory has no parent link: a
// path is written from its alias or cap. Empty components ("a//b") are
// dropped, as a shell's "$DIR/$NAME" with DIR ending in "/" makes them.
func parseArg(dir, s string) (aliases.Arg, error) {
	a, err := aliases.ParseArg(s, aliases.Resolver(dir))
	if err != nil || !a.IsGrid() {
		return a, err
	}
	for _, part := range strings.Split(a.Path, "/") {
		if part == "." || part == ".." {
			return a, fmt.Errorf("%s: %w: %q is not a name (a grid folder has no parent or self link: write the path from the alias or cap)", a, aliases.ErrBadPath, part)
		}
	}
	return a, nil
}

// localJoin is the local path of the entry name inside the local folder
// dir, for cp -r from the grid. The grid refuses "/", "." and ".." in
// names, but a name it keeps may still leave dir on another system (on
// Windows "..\x" or "C:x", or "CON", a device): refused, never written.
func localJoin(dir, name string) (string, error) {
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("%q is not a safe file name on this system: not copied", name)
	}
	return filepath.Join(dir, name), nil
}
