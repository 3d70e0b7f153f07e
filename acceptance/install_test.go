//go:build !acceptance

package acceptance

// `make install` into a staging folder (DESTDIR), as a packager runs it:
// the binary carries the Makefile's version and commit, the systemd unit
// examples land beside it pointing at the installed binary, and systemd
// itself accepts them. This runs in `make test` (no build tag): it needs
// only make and go, and systemd-analyze when present.

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unitFile is a systemd unit read as section -> key -> values.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, l)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func TestMakeInstall(t *testing.T) {
	for _, tool := range []string{"make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	units, _ := filepath.Glob(filepath.Join(root, "conf", "systemd", "*.service"))
	if len(units) < 3 {
		t.Fatalf("conf/systemd holds %d unit files, want one per role at least", len(units))
	}
	commit := "unknown"
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	// One build for every case: BIN is a make variable.
	bin := filepath.Join(t.TempDir(), "tarn")
	const version = "v0.0.0-install-test"

	cases := []struct {
		name     string
		vars     []string
		prefix   string
		unitDirs []string // folders under DESTDIR that must hold the units
	}{
		{"defaults", nil, "/usr/local", []string{"usr/local/share/tarn/systemd"}},
		{"prefix and systemd unit dir", []string{"PREFIX=/opt/tarn", "SYSTEMD_UNIT_DIR=/etc/systemd/system"},
			"/opt/tarn", []string{"opt/tarn/share/tarn/systemd", "etc/systemd/system"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			args := append([]string{"-s", "-C", root, "install", "DESTDIR=" + dest, "BIN=" + bin, "VERSION=" + version}, tc.vars...)
			cmd := exec.CommandContext(ctx, "make", args...)
			// Under `make test` the outer make's flags and variables would
			// leak into this one through the environment.
			for _, e := range os.Environ() {
				if k, _, _ := strings.Cut(e, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
					cmd.Env = append(cmd.Env, e)
				}
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
			}

			// Exactly the binary and the units, with their modes.
			want := map[string]fs.FileMode{strings.TrimPrefix(tc.prefix, "/") + "/bin/tarn": 0o755}
			for _, d := range tc.unitDirs {
				for _, u := range units {
					want[d+"/"+filepath.Base(u)] = 0o644
				}
			}
			got := map[string]fs.FileMode{}
			filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dest, p)
					st, _ := d.Info()
					got[filepath.ToSlash(rel)] = st.Mode()
				}
				return nil
			})
			for p, m := range want {
				if g, ok := got[p]; !ok {
					t.Errorf("not installed: DESTDIR/%s", p)
				} else if g != m {
					t.Errorf("DESTDIR/%s has mode %v, want %v", p, g, m)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("installed but not expected: DESTDIR/%s", p)
				}
			}
			if t.Failed() {
				t.FailNow()
			}

			// The Makefile's ldflags reach `tarn version`.
			installed := filepath.Join(dest, tc.prefix, "bin", "tarn")
			out, err := exec.Command(installed, "version").CombinedOutput()
			if err != nil {
				t.Fatalf("tarn version: %v\n%s", err, out)
			}
			if line := string(out); !strings.HasPrefix(line, "tarn "+version+" ") || !strings.Contains(line, "(commit "+commit) {
				t.Errorf("tarn version printed %q; want version %s and commit %s", strings.TrimSpace(line), version, commit)
			}

			for _, d := range tc.unitDirs {
				for _, src := range units {
					checkUnit(t, filepath.Join(dest, d, filepath.Base(src)), tc.prefix+"/bin/tarn", installed)
				}
			}
		})
	}
}

// checkUnit checks an installed unit: it runs the installed binary on a
// node folder that it alone may write, as the tarn user, with the
// hardening the docs promise, and systemd-analyze verify finds nothing.
func checkUnit(t *testing.T, path, binary, installed string) {
	t.Helper()
	name := filepath.Base(path)
	u := parseUnit(t, path)
	start := strings.Fields(u.get("Service", "ExecStart"))
	if len(start) != 3 || start[0] != binary || start[1] != "run" {
		t.Errorf("%s: ExecStart=%s; want %s run NODE-FOLDER", name, u.get("Service", "ExecStart"), binary)
		return
	}
	folder := start[2]
	want := []struct{ section, key, value string }{
		{"Service", "User", "tarn"},
		{"Service", "Restart", "on-failure"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "ReadWritePaths", folder},
		{"Service", "ExecStartPre", binary + " config check " + folder},
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, w := range want {
		if got := u.get(w.section, w.key); got != w.value {
			t.Errorf("%s: [%s] %s=%q, want %q", name, w.section, w.key, got, w.value)
		}
	}
	if role, ok := strings.CutPrefix(strings.TrimSuffix(name, ".service"), "tarn-"); ok && !strings.HasSuffix(folder, "/"+role) {
		t.Errorf("%s: node folder %s is not named after the role %s", name, folder, role)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("no systemd-analyze (%v): unit %s not verified by systemd", err, name)
		return
	}
	// verify wants the binary where the unit says; point a copy at the
	// staged one.
	b, _ := os.ReadFile(path)
	b = bytes.ReplaceAll(b, []byte(binary), []byte(installed))
	if bad := verifyUnit(t, sa, name, b); len(bad) > 0 {
		t.Errorf("systemd-analyze verify %s:\n%s", name, strings.Join(bad, "\n"))
	}
	// The check itself can fail: a mistyped value is caught.
	broken := bytes.Replace(b, []byte("Restart=on-failure"), []byte("Restart=sometimes"), 1)
	if bad := verifyUnit(t, sa, name, broken); len(bad) == 0 {
		t.Errorf("systemd-analyze verify %s found nothing wrong with Restart=sometimes", name)
	}
}

// verifyUnit runs systemd-analyze verify on unit text saved as name and
// returns its complaints. verify reports bad keys and values with exit
// status 0, so every line naming the unit counts, and so does a failure.
func verifyUnit(t *testing.T, sa, name string, text []byte) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, name) {
			bad = append(bad, l)
		}
	}
	if err != nil && len(bad) == 0 {
		bad = append(bad, err.Error()+": "+strings.TrimSpace(string(out)))
	}
	return bad
}
