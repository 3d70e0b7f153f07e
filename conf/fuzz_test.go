package conf

import (
	"regexp"

	"github.com/BurntSushi/toml"
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

// FuzzKeyLines checks the line finder against the toml parser: for every
// document the parser accepts, each key the parser saw must have a line
// (array indexes aside), and every line must be inside the document.
func FuzzKeyLines(f *testing.F) {
	for _, glob := range []string{"examples/*.toml", "examples/grid/*.toml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(string(b))
			}
		}
	}
	// Found by the fuzzer: TOML 1.1 escapes (\e, \xHH) and control
	// characters in quoted keys must give the same path the decoder reports.
	f.Add("\"\\e\" = 1\n\"\\x01\\u00e9\\U0001F600\" = 2\n")
	f.Add("a.'b c'.\"d\\\"e\" = [ {x = 1}, {y = '''z'''} ]\n[[t]]\n[t.u]\nv = 1979-05-27T07:32:00Z # c\n")
	f.Fuzz(func(t *testing.T, src string) {
		var doc map[string]any
		md, err := toml.Decode(src, &doc)
		if err != nil {
			return
		}
		lines := keyLines(src)
		nlines := strings.Count(src, "\n") + 1
		seen := map[string]bool{}
		for k, l := range lines {
			if l < 1 || l > nlines {
				t.Fatalf("%s at line %d of %d", k, l, nlines)
			}
			seen[stripIndexes.ReplaceAllString(k, "")] = true
		}
		for _, k := range md.Keys() {
			if !seen[k.String()] {
				t.Fatalf("no line for key %s; found %v", k, lines)
			}
		}
	})
}

var stripIndexes = regexp.MustCompile(`\[[0-9]+\]`)
