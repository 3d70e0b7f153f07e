package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary profiles to Parse: it must never panic, and a
// failure must always be an ErrorList whose entries name the file.
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"examples/*.toml", "examples/grid/*.toml", "testdata/broken/*.toml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil {
				in, _, _ := strings.Cut(string(b), "----- expect\n")
				f.Add([]byte(in))
			}
		}
	}
	f.Add([]byte("a = [ { b = 1 }, [ 'c' ] ]\n[[x.y]]\n[x.y.z]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("/n/tarn.toml", data)
		if err == nil {
			if p == nil {
				t.Fatal("nil profile and nil error")
			}
			return
		}
		list, ok := err.(ErrorList)
		if !ok || len(list) == 0 {
			t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
		}
		for _, e := range list {
			if e.File != "/n/tarn.toml" || e.Line < 0 {
				t.Fatalf("bad error entry %+v", e)
			}
		}
		keyLines(string(data)) // also on text the parser refused
	})
}
