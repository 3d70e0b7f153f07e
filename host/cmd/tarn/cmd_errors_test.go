package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrors: cobra's own failures (a mistyped subcommand, a wrong
// number of arguments, a bad flag) are one "tarn: ..." line naming the
// command, with exit status 1; a mistyped subcommand of a group is never
// taken for the group's help (which exits 0).
func TestCLIErrors(t *testing.T) {
	bin := buildTarn(t)
	tests := []struct {
		name string
		args []string
		code int
		want string // in standard error
	}{
		{"typo in a group's subcommand", []string{"config", "chek"}, 1, `tarn: config: unknown command "chek" (did you mean "check"?); commands: check`},
		{"typo in account", []string{"account", "lst"}, 1, `tarn: account: unknown command "lst" (did you mean "list"?)`},
		{"typo at the top", []string{"stauts"}, 1, `tarn: unknown command "stauts" (did you mean "status"?)`},
		{"unknown flag", []string{"status", "--bogus"}, 1, `tarn: status: unknown flag: --bogus (usage: tarn status [flags]`},
		{"too many arguments", []string{"run", "a", "b"}, 1, `tarn: run: accepts at most 1 arg(s), received 2 (usage: tarn run [DIR]`},
		{"init without a folder", []string{"init", "--profile", "storage"}, 1, `tarn: init: accepts 1 arg(s), received 0 (usage: tarn init --profile`},
		{"init without a profile", []string{"init", filepath.Join(t.TempDir(), "n")}, 1, `tarn: init: --profile is required: introducer, storage, client or all`},
		{"a group alone is its help", []string{"config"}, 0, ""},
		{"--node and DIR differ", []string{"config", "check", "--node", "/a", "/b"}, 1, "tarn: config check: two node folders: DIR /b and --node /a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, bin, nil, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr %q lacks %q", r.stderr, tc.want)
			}
			if tc.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("error is not one line:\n%s", r.stderr)
			}
		})
	}
}

// TestInitGridSecretMessage: `tarn init --grid-secret` says it copied the
// grid's secret, never that it made a new grid (which sent operators
// hunting for a mistake that was not there).
func TestInitGridSecretMessage(t *testing.T) {
	bin := buildTarn(t)
	root := t.TempDir()
	intro := filepath.Join(root, "intro")
	if r := run(t, bin, nil, "init", "--profile", "introducer", intro); r.code != 0 {
		t.Fatal(r.stderr)
	}
	secret := filepath.Join(intro, "private", "grid.secret")
	r := run(t, bin, nil, "init", "--profile", "storage", "--grid-secret", secret, filepath.Join(root, "s1"))
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if strings.Contains(r.stdout, "made a new grid secret") || !strings.Contains(r.stdout, "copied the grid secret of "+secret) {
		t.Fatalf("init --grid-secret output:\n%s", r.stdout)
	}
	a, _ := os.ReadFile(secret)
	b, _ := os.ReadFile(filepath.Join(root, "s1", "private", "grid.secret"))
	if string(a) != string(b) {
		t.Fatal("the storage node's grid secret differs from the introducer's")
	}
	// config check, run and plugin list take --node as status does.
	if r := run(t, bin, nil, "config", "check", "--node", filepath.Join(root, "s1")); r.code != 0 || !strings.Contains(r.stdout, "ok (roles: storage)") {
		t.Fatalf("config check --node: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, bin, nil, "init", "--profile", "storage", filepath.Join(root, "s2"))
	if r.code != 0 || !strings.Contains(r.stdout, "made a new grid secret") {
		t.Fatalf("init without --grid-secret does not say it made a new grid:\n%s%s", r.stdout, r.stderr)
	}
}

// TestConfigCheckMissingRootCap: an account whose root cap file does not
// exist yet passes `tarn config check` with a warning (the node makes the
// root at start, docs/webdav.md); one whose folder is missing does not.
func TestConfigCheckMissingRootCap(t *testing.T) {
	bin := buildTarn(t)
	dir := filepath.Join(t.TempDir(), "client")
	if r := run(t, bin, nil, "init", "--profile", "client", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	prof := filepath.Join(dir, "tarn.toml")
	base, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	account := func(file string) string {
		return string(base) + "\n[[accounts]]\nname = \"alice\"\npassword_hash = \"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"\nroot_cap_file = \"" + file + "\"\n"
	}
	tests := []struct {
		name, file string
		code       int
		want       string
	}{
		{"missing file: warning", "private/alice.root", 0, "does not exist: the node makes a new, empty root directory for account \"alice\""},
		{"missing folder: error", "nowhere/alice.root", 1, "accounts[0].root_cap_file: " + filepath.Join(dir, "nowhere", "alice.root") + ": its folder is missing"},
		{"a folder: error", "private", 1, "is a folder: want a file holding the account's root cap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(prof, []byte(account(tc.file)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := run(t, bin, nil, "config", "check", dir)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr lacks %q:\n%s%s", r.code, tc.code, tc.want, r.stdout, r.stderr)
			}
		})
	}
}

// TestConfigCheckReservedSpace: a storage server whose reserved space is
// more than its disk passes with a warning saying it will refuse every
// share; a small reserve gives no warning.
func TestConfigCheckReservedSpace(t *testing.T) {
	bin := buildTarn(t)
	dir := filepath.Join(t.TempDir(), "storage")
	if r := run(t, bin, nil, "init", "--profile", "storage", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	prof := filepath.Join(dir, "tarn.toml")
	base, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reserved string
		warn     bool
	}{{`"1 PiB"`, true}, {`"1MiB"`, false}} {
		text := strings.Replace(string(base), `reserved_space = "1GiB"`, "reserved_space = "+tc.reserved, 1)
		if err := os.WriteFile(prof, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r := run(t, bin, nil, "config", "check", dir)
		got := strings.Contains(r.stderr, "storage.reserved_space: 1.0 PiB is more than the whole disk holding")
		if r.code != 0 || got != tc.warn {
			t.Errorf("reserved_space = %s: exit %d, warning %v (want %v):\n%s", tc.reserved, r.code, got, tc.warn, r.stderr)
		}
	}
}
