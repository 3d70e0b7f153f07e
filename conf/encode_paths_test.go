package conf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEncodeRelativePaths: a profile rewritten by a command (tarn account
// add, tarn dev) names the files inside its node folder relatively, so the
// folder still works after it is moved; paths outside stay absolute, and
// durations are written without trailing zero units.
func TestEncodeRelativePaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	p, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Client.Enabled = true
	p.Accounts = []Account{
		{Name: "in", PasswordHash: "$2b$10$x", RootCapFile: filepath.Join(dir, "private", "accounts", "in.cap")},
		{Name: "out", PasswordHash: "$2b$10$x", RootCapFile: "/srv/caps/out.cap"},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		`state_dir = "."`,
		`secret_file = "private/grid.secret"`,
		`convergence_secret_file = "private/convergence.secret"`,
		`root_cap_file = "private/accounts/in.cap"`,
		`root_cap_file = "/srv/caps/out.cap"`,
		`lease_duration = "744h"`,
		`server_timeout = "30s"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("encoded profile lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, dir) {
		t.Errorf("encoded profile names the node folder %s:\n%s", dir, text)
	}
	if p.Accounts[0].RootCapFile != filepath.Join(dir, "private", "accounts", "in.cap") {
		t.Errorf("Encode changed the profile itself: %q", p.Accounts[0].RootCapFile)
	}

	// Moved elsewhere, the folder's profile names the new place.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.MkdirAll(moved, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(moved, FileName), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := Load(moved)
	if err != nil {
		t.Fatal(err)
	}
	if q.Node.StateDir != moved || q.Grid.SecretFile != filepath.Join(moved, "private", "grid.secret") ||
		q.Accounts[0].RootCapFile != filepath.Join(moved, "private", "accounts", "in.cap") ||
		q.Accounts[1].RootCapFile != "/srv/caps/out.cap" {
		t.Errorf("moved profile resolves to %q %q %q %q", q.Node.StateDir, q.Grid.SecretFile, q.Accounts[0].RootCapFile, q.Accounts[1].RootCapFile)
	}
}
