package pluginhost_test

import (
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

func TestSpecsFromProfile(t *testing.T) {
	dir := t.TempDir()
	pin := strings.Repeat("ab", 32)
	text := `
[storage]
enabled = true

[plugins.codec]
path = "bin/codec-replica"
sha256 = "` + pin + `"
fast_path = false

[plugins.storage]
name = "disk"

[plugins.transport]
config = { proxy = "socks5:127.0.0.1:1080" }
`
	p, err := conf.Parse(filepath.Join(dir, conf.FileName), []byte(text))
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	specs, err := pluginhost.SpecsFromProfile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 {
		t.Fatalf("%d specs", len(specs))
	}
	c, s, tr := specs[0], specs[1], specs[2]
	if c.Kind != pluginkit.KindCodec || c.Path != filepath.Join(dir, "bin/codec-replica") || hex.EncodeToString(c.SHA256) != pin || c.FastPath || c.Name != "" {
		t.Errorf("codec spec %+v", c)
	}
	var sc map[string]string
	if err := json.Unmarshal(s.Config, &sc); err != nil || s.Name != "disk" || sc["path"] != filepath.Join(p.Node.StateDir, "shares") || !s.FastPath {
		t.Errorf("storage spec %+v (config %s): want the disk in STATE_DIR/shares", s, s.Config)
	}
	var tc map[string]string
	if err := json.Unmarshal(tr.Config, &tc); err != nil || tr.Name != "tcp" || tc["proxy"] != "socks5:127.0.0.1:1080" {
		t.Errorf("transport spec %+v (config %s)", tr, tr.Config)
	}
}

// TestSpecsDiskPath: the disk plugin runs in its own process, so a relative
// path from the profile reaches it resolved against the state folder.
func TestSpecsDiskPath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, line, want string }{
		{"default", ``, "shares"},
		{"relative", `config = { path = "data/shares" }`, "data/shares"},
		{"absolute", `config = { path = "/srv/tarn/shares" }`, "/srv/tarn/shares"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "[storage]\nenabled = true\n[plugins.storage]\nname = \"disk\"\n" + tc.line + "\n"
			p, err := conf.Parse(filepath.Join(dir, conf.FileName), []byte(text))
			if err != nil {
				t.Fatalf("profile: %v", err)
			}
			specs, err := pluginhost.SpecsFromProfile(p)
			if err != nil {
				t.Fatal(err)
			}
			var sc map[string]string
			if err := json.Unmarshal(specs[1].Config, &sc); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if !filepath.IsAbs(want) {
				want = filepath.Join(p.Node.StateDir, want)
			}
			if sc["path"] != want {
				t.Errorf("path %q, want %q", sc["path"], want)
			}
		})
	}
}
