//go:build unix

package storagedisk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// pwriteEach (FreeBSD's pwritev) lays the buffers end to end at the
// offset, and fails with nothing written on a file open read-only.
func TestPwriteEach(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	for _, tc := range []struct {
		name string
		bufs [][]byte
		off  int64
	}{
		{"one buffer", [][]byte{[]byte("hello")}, 0},
		{"several with an empty one", [][]byte{[]byte("ab"), nil, []byte("cde"), []byte("f")}, 3},
		{"none", nil, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := bytes.Join(tc.bufs, nil)
			n, err := pwriteEach(f, tc.bufs, tc.off)
			if err != nil || n != len(want) {
				t.Fatalf("pwriteEach: %d, %v; want %d", n, err, len(want))
			}
			got, _ := os.ReadFile(p)
			if len(want) > 0 && !bytes.Equal(got[tc.off:], want) {
				t.Fatalf("file holds %q at %d, want %q", got[tc.off:], tc.off, want)
			}
		})
	}
	t.Run("read-only file", func(t *testing.T) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if n, err := pwriteEach(f, [][]byte{[]byte("x")}, 0); n != 0 || err == nil {
			t.Fatalf("pwriteEach to a read-only file: %d, %v; want 0 and an error", n, err)
		}
	})
}
