//go:build acceptance

package acceptance

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
)

// copyFile copies src to dst, making dst's folder (0700 for private/).
func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestExampleProfiles puts each profile of conf/examples in a node folder,
// with the key and secrets `tarn init` makes placed where the profile says,
// and runs `tarn config check` on it: each passes, and `tarn plugin list`
// starts the plugins it names with its settings.
func TestExampleProfiles(t *testing.T) {
	files, _ := filepath.Glob("../conf/examples/*.toml")
	grid, _ := filepath.Glob("../conf/examples/grid/*.toml")
	files = append(files, grid...)
	if len(files) < 5 {
		t.Fatalf("found %d example profiles, want at least 5", len(files))
	}
	for _, f := range files {
		rel, _ := filepath.Rel("../conf/examples", f)
		t.Run(rel, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			copyFile(t, f, filepath.Join(dir, "tarn.toml"), 0o644)
			p, err := conf.Load(dir)
			if err != nil {
				t.Fatalf("conf.Load: %v", err)
			}
			// What an operator makes before the first start: the node's
			// key and secrets (tarn init), and the files the profile names.
			role := "all"
			if r := p.Roles(); len(r) == 1 {
				role = r[0]
			}
			scratch := filepath.Join(t.TempDir(), "init")
			mustTarn(t, CLI{}, "init", "--profile", role, scratch)
			copyFile(t, filepath.Join(scratch, "private", "node.key"), filepath.Join(p.Node.StateDir, "private", "node.key"), 0o600)
			copyFile(t, filepath.Join(scratch, "private", "grid.secret"), p.Grid.SecretFile, 0o600)
			if p.Client.Enabled {
				copyFile(t, filepath.Join(scratch, "private", "convergence.secret"), p.Client.ConvergenceSecretFile, 0o600)
			}
			for _, a := range p.Accounts {
				if a.RootCapFile != "" {
					if err := os.MkdirAll(filepath.Dir(a.RootCapFile), 0o700); err != nil {
						t.Fatal(err)
					}
					os.WriteFile(a.RootCapFile, []byte("tarn:dir:placeholder\n"), 0o600)
				}
			}
			r := tarn(t, CLI{}, "config", "check", dir)
			if r.Code != 0 {
				t.Fatalf("config check of %s: %v", rel, r)
			}
			want := filepath.Join(dir, "tarn.toml") + ": ok"
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("config check printed %q, want a line starting %q", r.Stdout, want)
			}
			t.Logf("%s%s", r.Stdout, r.Stderr)
			// config check passing must mean the node can start its
			// plugins with the profile's settings.
			t.Run("plugins start", func(t *testing.T) {
				r := tarn(t, CLI{Timeout: time.Minute}, "plugin", "list", dir)
				if r.Code != 0 {
					t.Errorf("BUG: %s passes config check but its plugins do not start:\n%s%s", rel, r.Stdout, r.Stderr)
				}
			})
		})
	}
}

// TestBrokenProfiles runs `tarn config check` on each golden broken profile
// of conf/testdata/broken: it exits non-zero and prints exactly the
// expected FILE:LINE: KEY: message lines; `tarn run` refuses one at start
// with the same line.
func TestBrokenProfiles(t *testing.T) {
	files, _ := filepath.Glob("../conf/testdata/broken/*.toml")
	if len(files) < 15 {
		t.Fatalf("found %d broken profiles, want at least 15", len(files))
	}
	const sep = "----- expect\n"
	lineRe := regexp.MustCompile(`^.+\.toml(:\d+: \S+)?: .+`) // FILE:LINE: KEY: msg, or FILE: msg for the whole file
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), sep)
			if !ok {
				t.Fatalf("%s: no %q separator", f, sep)
			}
			dir := filepath.Join(t.TempDir(), "node")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			prof := filepath.Join(dir, "tarn.toml")
			if err := os.WriteFile(prof, []byte(input), 0o644); err != nil {
				t.Fatal(err)
			}
			r := tarn(t, CLI{}, "config", "check", dir)
			if r.Code == 0 {
				t.Fatalf("config check accepted a broken profile: %v", r)
			}
			for _, w := range strings.Split(strings.TrimSpace(want), "\n") {
				w = strings.Replace(w, "FILE", prof, 1)
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("config check does not print\n  %s\ngot:\n%s", w, r.Stderr)
				}
				if !lineRe.MatchString(w) {
					t.Errorf("expected line %q is not FILE:LINE: KEY: message", w)
				}
			}
		})
	}

	t.Run("tarn run refuses at start", func(t *testing.T) {
		raw, err := os.ReadFile("../conf/testdata/broken/k-more-than-n.toml")
		if err != nil {
			t.Fatal(err)
		}
		input, want, _ := strings.Cut(string(raw), sep)
		dir := filepath.Join(t.TempDir(), "node")
		os.MkdirAll(dir, 0o755)
		prof := filepath.Join(dir, "tarn.toml")
		os.WriteFile(prof, []byte(input), 0o644)
		r := tarn(t, CLI{Timeout: 30 * time.Second}, "run", dir)
		w := strings.Replace(strings.TrimSpace(want), "FILE", prof, 1)
		if r.Code == 0 || !strings.Contains(r.Stderr, w) {
			t.Errorf("tarn run of a broken profile: want a non-zero exit and %q: %v", w, r)
		}
	})
}
