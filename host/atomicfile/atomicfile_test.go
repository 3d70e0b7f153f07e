package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.json")
	for _, tc := range []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"new file", "one", 0o600},
		{"replace, other mode", "two, longer", 0o644},
		{"replace with empty", "", 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteFile(path, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("read %q, %v; want %q", got, err, tc.data)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tc.mode {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), tc.mode)
			}
		})
	}
	// No temp file is left behind, and a folder that does not exist is an
	// error naming the file.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the folder, want only the file", len(ents))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Fatal("write into a missing folder succeeded")
	}
}
