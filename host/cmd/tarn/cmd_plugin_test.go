package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// initNode writes a node folder with `tarn init` and returns it.
func initNode(t *testing.T, bin string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if r := run(t, bin, nil, "init", "--profile", "all", dir); r.code != 0 {
		t.Fatalf("tarn init: %d %s", r.code, r.stderr)
	}
	return dir
}

func TestPluginCommands(t *testing.T) {
	bin := buildTarn(t)
	node := initNode(t, bin)

	t.Run("list table", func(t *testing.T) {
		r := run(t, bin, nil, "plugin", "list", node)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "KIND NAME VERSION PROTOCOL PID HEALTH" {
			t.Fatalf("table:\n%s", r.stdout)
		}
		for i, want := range []string{"codec reedsolomon", "storage disk", "transport tcp"} {
			f := strings.Fields(lines[i+1])
			if len(f) != 6 || f[0]+" "+f[1] != want || f[3] != "v1" || f[5] != "ok" {
				t.Errorf("row %q, want %s ... v1 PID ok", lines[i+1], want)
				continue
			}
			if pid, err := strconv.Atoi(f[4]); err != nil || pid <= 0 {
				t.Errorf("row %q: pid %q", lines[i+1], f[4])
			} else if _, err := os.Stat("/proc/" + f[4]); err == nil {
				t.Errorf("plugin pid %d still runs after tarn plugin list", pid)
			}
		}
	})

	t.Run("list json", func(t *testing.T) {
		r := run(t, bin, nil, "plugin", "list", "--json", node)
		var rows []struct {
			Kind, Name, Version, Health string
			Pid                         int
		}
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v:\n%s", r.code, err, r.stdout)
		}
		if len(rows) != 3 || rows[0].Kind != "codec" || rows[1].Name != "disk" || rows[2].Health != "ok" || rows[0].Pid == 0 || rows[0].Version == "" {
			t.Errorf("rows %+v", rows)
		}
	})

	t.Run("external plugin pinned", func(t *testing.T) {
		ext := filepath.Join(t.TempDir(), "tarn-codec-replica")
		if out, err := exec.Command("go", "build", "-o", ext, "../../../sdk/examples/codec-replica").CombinedOutput(); err != nil {
			t.Fatalf("build the example plugin: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(ext)
		sum := sha256.Sum256(b)
		good := hex.EncodeToString(sum[:])
		bad := strings.Repeat("0", 64)
		profile, err := os.ReadFile(filepath.Join(node, "tarn.toml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, pin string
			code      int
			want      []string
		}{
			{"right pin", good, 0, []string{"tarn-codec-replica", ext, good, "ok"}},
			{"wrong pin", bad, 1, []string{"does not match its pinned sha256", ext, good, bad}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				text := strings.Replace(string(profile), "[plugins.codec]\nname = \"reedsolomon\"",
					"[plugins.codec]\npath = \""+ext+"\"\nsha256 = \""+tc.pin+"\"", 1)
				if text == string(profile) {
					t.Fatal("profile has no [plugins.codec] name line to replace")
				}
				if err := os.WriteFile(filepath.Join(node, "tarn.toml"), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(filepath.Join(node, "tarn.toml"), profile, 0o600)
				r := run(t, bin, nil, "plugin", "list", node)
				all := r.stdout + r.stderr
				if r.code != tc.code {
					t.Errorf("exit %d, want %d:\n%s", r.code, tc.code, all)
				}
				for _, w := range tc.want {
					if !strings.Contains(all, w) {
						t.Errorf("output does not say %q:\n%s", w, all)
					}
				}
			})
		}
	})

	t.Run("serve by hand", func(t *testing.T) {
		r := run(t, bin, nil, "plugin", "serve", "codec", "reedsolomon")
		if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "only a tarn node runs this") {
			t.Errorf("exit %d, stderr %q: want one line saying a node runs it", r.code, r.stderr)
		}
		if r := run(t, bin, nil, "plugin", "--help"); strings.Contains(r.stdout, "serve ") || !strings.Contains(r.stdout, "list") {
			t.Errorf("help shows the hidden serve command:\n%s", r.stdout)
		}
	})

	t.Run("version", func(t *testing.T) {
		r := run(t, bin, nil, "version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "tarn ") || !strings.Contains(r.stdout, "codec v1, storage v1, transport v1") {
			t.Errorf("version: %d %q", r.code, r.stdout)
		}
	})
}

// A client node has no storage role: listing its plugins must not start the
// disk plugin, which would create shares/ in the node folder.
func TestPluginListClientLeavesFolder(t *testing.T) {
	bin := buildTarn(t)
	dir := filepath.Join(t.TempDir(), "client")
	if r := run(t, bin, nil, "init", "--profile", "client", dir); r.code != 0 {
		t.Fatalf("tarn init: %d %s", r.code, r.stderr)
	}
	before := folderNames(t, dir)
	r := run(t, bin, nil, "plugin", "list", dir)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var kinds []string
	for _, l := range lines[1:] {
		kinds = append(kinds, strings.Fields(l)[0])
	}
	if strings.Join(kinds, " ") != "codec transport" {
		t.Errorf("kinds %q, want codec transport:\n%s", kinds, r.stdout)
	}
	if after := folderNames(t, dir); after != before {
		t.Errorf("plugin list changed the node folder:\nbefore %s\nafter  %s", before, after)
	}
}

// folderNames lists every path under dir, one string, to compare.
func folderNames(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		names = append(names, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}
