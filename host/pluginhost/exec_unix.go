//go:build unix

package pluginhost

import "os"

// Executable reports whether the file at path, of which st is the stat,
// may be run as a plugin: someone has the execute bit.
func Executable(path string, st os.FileInfo) bool { return st.Mode().Perm()&0o111 != 0 }
