package conf

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestEncodeRoundTrip: a loaded profile written back with the toml encoder
// (as a command that edits a profile would) loads to the same profile.
func TestEncodeRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("examples/*.toml")
	grid, _ := filepath.Glob("examples/grid/*.toml")
	for _, f := range append(files, grid...) {
		t.Run(f, func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := toml.NewEncoder(&b).Encode(p); err != nil {
				t.Fatal(err)
			}
			q, err := Parse(p.File, b.Bytes())
			if err != nil {
				t.Fatalf("re-parse:\n%v\n%s", err, b.String())
			}
			p.lines, q.lines = nil, nil
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip differs:\n%+v\n%+v", p, q)
			}

		})
	}
}
