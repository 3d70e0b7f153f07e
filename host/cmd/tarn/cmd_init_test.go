package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/identity"
)

// The real binary, built once for the package's tests: a build per test
// (17 of them) took most of the package's time on a busy machine, near go
// test's 10-minute limit. TestMain removes it.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildTarn returns the binary built from this package (tests only run
// it: none may change or move it).
func buildTarn(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "tarn-cmd-test-")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "tarn")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{o.String(), e.String(), code}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestInitAndConfigCheck(t *testing.T) {
	bin := buildTarn(t)
	root := t.TempDir()

	roles := map[string]string{"introducer": "introducer", "storage": "storage", "client": "client", "all": "introducer, storage, client"}
	for role, want := range roles {
		t.Run("init "+role, func(t *testing.T) {
			dir := filepath.Join(root, role)
			r := run(t, bin, nil, "init", "--profile", role, dir)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "(roles: "+want+")") {
				t.Fatalf("output lacks roles %q:\n%s", want, r.stdout)
			}
			id, err := identity.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.stdout, "key hash: "+id.KeyHash()) || !strings.Contains(r.stdout, "node id:  "+id.NodeID()) {
				t.Fatalf("output does not show the key written:\n%s", r.stdout)
			}
			files := map[string]os.FileMode{
				"private":             0o700,
				"private/node.key":    0o600,
				"private/grid.secret": 0o600,
			}
			if role == "client" || role == "all" {
				files["private/convergence.secret"] = 0o600
			} else if _, err := os.Stat(filepath.Join(dir, "private/convergence.secret")); err == nil {
				t.Error("a convergence secret for a node without a client")
			}
			for f, m := range files {
				if got := mode(t, filepath.Join(dir, f)); got != m {
					t.Errorf("%s: mode %v, want %v", f, got, m)
				}
			}
			p, err := conf.Load(dir)
			if err != nil {
				t.Fatalf("the written profile does not load: %v", err)
			}
			if got := strings.Join(p.Roles(), ", "); got != want {
				t.Fatalf("roles %q, want %q", got, want)
			}
			text, _ := os.ReadFile(filepath.Join(dir, conf.FileName))
			if n := strings.Count(string(text), "\n#"); n < 40 {
				t.Fatalf("only %d comment lines: not a commented profile", n)
			}

			// config check says ok, then the URLs other profiles name this
			// node by, with its key hash and announced addresses.
			c := run(t, bin, nil, "config", "check", dir)
			wantOut := filepath.Join(dir, conf.FileName) + ": ok (roles: " + want + ")\n"
			for _, u := range []struct {
				on                  bool
				what, port, listKey string
			}{
				{p.Introducer.Enabled, "introducer url", "3458", "grid.introducers"},
				{p.Storage.Enabled, "storage url", "3457", "grid.servers"},
			} {
				if u.on {
					addrs := conf.Announced(nil, []string{"tcp:0.0.0.0:" + u.port})
					if role == "all" {
						addrs = []string{"tcp:127.0.0.1:" + u.port}
					}
					wantOut += fmt.Sprintf("%s: tarn://%s@%s (for other nodes' %s)\n", u.what, id.KeyHash(), addrs[0], u.listKey)
				}
			}
			if c.code != 0 || c.stdout != wantOut {
				t.Fatalf("config check: exit %d\nstdout %q\nwant   %q\nstderr %q", c.code, c.stdout, wantOut, c.stderr)
			}
		})
	}

	t.Run("refuses an existing profile", func(t *testing.T) {
		dir := filepath.Join(root, "storage")
		before, _ := os.ReadFile(filepath.Join(dir, conf.FileName))
		r := run(t, bin, nil, "init", "--profile", "client", dir)
		if r.code == 0 || !strings.Contains(r.stderr, "refusing to overwrite") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		after, _ := os.ReadFile(filepath.Join(dir, conf.FileName))
		if !bytes.Equal(before, after) {
			t.Fatal("profile changed")
		}
	})

	t.Run("keeps the key when the profile was removed", func(t *testing.T) {
		dir := filepath.Join(root, "client")
		id, _ := identity.Load(dir)
		os.Remove(filepath.Join(dir, conf.FileName))
		r := run(t, bin, nil, "init", "--profile", "client", dir)
		if r.code != 0 || !strings.Contains(r.stdout, "kept the existing key") || !strings.Contains(r.stdout, id.KeyHash()) {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("joins a grid", func(t *testing.T) {
		intro := filepath.Join(root, "introducer")
		iid, _ := identity.Load(intro)
		url := "tarn://" + iid.KeyHash() + "@tcp:127.0.0.1:3458"
		dir := filepath.Join(root, "joined")
		r := run(t, bin, nil, "init", "--profile", "storage", "--grid-secret", filepath.Join(intro, "private/grid.secret"), "--introducer", url, dir)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		a, _ := identity.LoadSecret(filepath.Join(intro, "private/grid.secret"))
		b, err := identity.LoadSecret(filepath.Join(dir, "private/grid.secret"))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("grid secret not copied: %v", err)
		}
		p, err := conf.Load(dir)
		if err != nil || len(p.Grid.Introducers) != 1 || p.Grid.Introducers[0] != url {
			t.Fatalf("introducers %v, %v", p.Grid.Introducers, err)
		}
		// A storage server without an announce address is valid but warned about.
		c := run(t, bin, nil, "config", "check", dir)
		if c.code != 0 || !strings.Contains(c.stderr, "warning: ") || !strings.Contains(c.stderr, "storage.announce") {
			t.Fatalf("exit %d, stderr %q", c.code, c.stderr)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		for name, args := range map[string][]string{
			"unknown profile":  {"init", "--profile", "gateway", filepath.Join(root, "x1")},
			"no profile flag":  {"init", filepath.Join(root, "x2")},
			"bad introducer":   {"init", "--profile", "client", "--introducer", "http://x", filepath.Join(root, "x3")},
			"bad grid secret":  {"init", "--profile", "client", "--grid-secret", "/etc/hostname", filepath.Join(root, "x4")},
			"missing node dir": {"config", "check", filepath.Join(root, "nowhere")},
		} {
			r := run(t, bin, nil, args...)
			if r.code == 0 || !strings.HasPrefix(r.stderr, "tarn: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
				t.Errorf("%s: exit %d, stderr %q", name, r.code, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "x1")); err == nil {
			t.Error("a refused init left a folder")
		}
	})

	t.Run("check reports every mistake with its line", func(t *testing.T) {
		dir := filepath.Join(root, "broken")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, conf.FileName), []byte("[storage]\nenabled = true\nreserved = 1\n\n[client.shares]\nk = 0\n"), 0o644)
		c := run(t, bin, nil, "config", "check", dir)
		f := filepath.Join(dir, conf.FileName)
		want := f + ":3: storage.reserved: unknown key (did you mean \"reserved_space\"?)\n" + f + ":6: client.shares.k: k = 0: must be at least 1\n"
		if c.code == 0 || !strings.HasPrefix(c.stderr, want) || !strings.Contains(c.stderr, "2 problems") {
			t.Fatalf("exit %d, stderr:\n%s\nwant it to start with:\n%s", c.code, c.stderr, want)
		}
	})

	t.Run("check refuses an open key and a missing secret", func(t *testing.T) {
		dir := filepath.Join(root, "all")
		os.Chmod(filepath.Join(dir, "private/node.key"), 0o644)
		os.Rename(filepath.Join(dir, "private/convergence.secret"), filepath.Join(dir, "private/c.bak"))
		t.Cleanup(func() {
			os.Chmod(filepath.Join(dir, "private/node.key"), 0o600)
			os.Rename(filepath.Join(dir, "private/c.bak"), filepath.Join(dir, "private/convergence.secret"))
		})
		c := run(t, bin, nil, "config", "check", dir)
		if c.code == 0 || !strings.Contains(c.stderr, "chmod 600 "+filepath.Join(dir, "private/node.key")) ||
			!regexp.MustCompile(`tarn.toml:\d+: client.convergence_secret_file: .*no such file`).MatchString(c.stderr) {
			t.Fatalf("exit %d, stderr:\n%s", c.code, c.stderr)
		}
	})

	t.Run("check verifies a plugin pin", func(t *testing.T) {
		dir := filepath.Join(root, "pinned")
		if r := run(t, bin, nil, "init", "--profile", "introducer", dir); r.code != 0 {
			t.Fatal(r.stderr)
		}
		f := filepath.Join(dir, conf.FileName)
		text, _ := os.ReadFile(f)
		s := strings.Replace(string(text), "name = \"reedsolomon\"\n", "", 1)
		s = strings.Replace(s, "#path = \"plugins/tarn-codec-example\"", "path = \""+bin+"\"", 1)
		s = strings.Replace(s, "#sha256 = \"0000", "sha256 = \"0000", 1)
		os.WriteFile(f, []byte(s), 0o644)
		c := run(t, bin, nil, "config", "check", dir)
		if c.code == 0 || !regexp.MustCompile(`tarn.toml:\d+: plugins.codec.path: .* has sha256 [0-9a-f]{64}, the profile pins 0{64}`).MatchString(c.stderr) {
			t.Fatalf("exit %d, stderr:\n%s", c.code, c.stderr)
		}
	})

	t.Run("check defaults to TARN_NODE", func(t *testing.T) {
		dir := filepath.Join(root, "introducer")
		c := run(t, bin, []string{"TARN_NODE=" + dir}, "config", "check")
		if c.code != 0 || !strings.HasPrefix(c.stdout, filepath.Join(dir, conf.FileName)+": ok") {
			t.Fatalf("exit %d, %q %q", c.code, c.stdout, c.stderr)
		}
	})
}
