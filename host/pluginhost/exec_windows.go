package pluginhost

import (
	"os"
	"path/filepath"
	"strings"
)

// Executable reports whether the file at path, of which st is the stat,
// may be run as a plugin. Windows has no execute bit: a program is a .exe.
func Executable(path string, st os.FileInfo) bool {
	return strings.EqualFold(filepath.Ext(path), ".exe")
}
