// Package layering holds only a test: it guards the import rules of the
// tree that the design card fixes, by parsing every non-test Go file.
//
//   - sdk/ is the public plugin SDK: it must not import host/, plugins/,
//     frontends/ or conf/, so a plugin author needs nothing else.
//   - frontends/ reach the grid only through the vdrive API: they must not
//     import the grid client, the formats or the protocols below it.
//   - plugins/ are built on sdk/ alone (the registry may import plugins).
package layering

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/tarnfs/tarn/"

type rule struct {
	under  string   // folder, relative to the module root
	banned []string // import path prefixes, relative to the module
}

var rules = []rule{
	{"sdk", []string{"host/", "plugins/", "frontends/", "conf"}},
	{"plugins", []string{"host/", "frontends/", "conf"}},
	{"frontends", []string{
		"host/grid", "host/storageclient", "host/storageserver", "host/chk",
		"host/mutable", "host/nodelink", "host/introducer",
		"host/placement", "host/node", "host/api", "sdk/storage", "sdk/codec",
	}},
}

func TestLayering(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	checked := 0
	for _, r := range rules {
		dir := filepath.Join(root, r.under)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			rel, _ := filepath.Rel(root, path)
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if !strings.HasPrefix(p, module) {
					continue
				}
				local := strings.TrimPrefix(p, module)
				for _, b := range r.banned {
					if strings.HasPrefix(local, b) {
						t.Errorf("%s imports %s: %s/ must not import %s", rel, p, r.under, b)
					}
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("walk %s: %v", r.under, err)
		}
	}
	if checked == 0 {
		t.Fatal("no Go files checked: the rules name no existing folder")
	}
}
