package dirnode

import (
	"context"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestGoldenRoot pins the bytes of a small directory (one inline bucket):
// the root, the entry encoding and the sealing of a child write cap are
// deterministic, so any change to the format shows here.
func TestGoldenRoot(t *testing.T) {
	rk, wk := make([]byte, 32), make([]byte, 32)
	for i := range rk {
		rk[i], wk[i] = byte(i), byte(32+i)
	}
	k := NewKeys(rk, wk)
	ts := time.Unix(1767225600, 500).UTC() // 2026-01-01T00:00:00.0000005Z
	root, err := Edit(context.Background(), EmptyRoot(), k, newMemChunks(), nil, Limits{}, func(tx *Tx) error {
		if err := tx.Set("report.pdf", "tarn:lit:nbswy3dp", "", Metadata{Type: TypeFile, Size: 5, Ctime: ts, Mtime: ts,
			Extra: map[string]string{"unix:mode": "0644"}}); err != nil {
			return err
		}
		return tx.Set("Caf\u00e9", "tarn:dir-ro:x", "tarn:dir:y", Metadata{Type: TypeDir, Ctime: ts, Mtime: ts})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(root)
	path := filepath.Join("testdata", "golden-root.hex")
	if *update {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("root bytes changed:\ngot  %s\nwant %s", got, want)
	}
}
