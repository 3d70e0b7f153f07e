package security

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/node"
)

// TestNodeRefusesOpenSecrets prepares a node folder with every role (node
// key, grid secret, convergence secret), checks each secret file is created
// 0600, then makes each one readable by others in turn: node.Start must
// refuse, naming the file and the chmod that fixes it.
func TestNodeRefusesOpenSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	p, err := conf.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Introducer.Enabled, p.Storage.Enabled, p.Client.Enabled = true, true, true
	p.Introducer.Listen = []string{"tcp:127.0.0.1:0"}
	p.Storage.Listen = []string{"tcp:127.0.0.1:0"}
	p.Client.APIListen = "127.0.0.1:0"
	if _, err := node.Prepare(p, nil); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.ToLower(d.Name())
		if strings.Contains(name, "key") || strings.Contains(name, "secret") {
			secrets = append(secrets, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) < 3 {
		t.Fatalf("found secret files %v, want node key, grid and convergence secrets", secrets)
	}
	for _, path := range secrets {
		rel, _ := filepath.Rel(dir, path)
		t.Run(rel, func(t *testing.T) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := st.Mode().Perm(); perm != 0o600 {
				t.Fatalf("%s created with mode %04o, want 0600", rel, perm)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(path, 0o600)
			n, err := node.Start(context.Background(), dir, node.Options{Logger: hclog.NewNullLogger()})
			if err == nil {
				n.Stop()
				t.Fatalf("node started with %s readable by others", rel)
			}
			if !errors.Is(err, identity.ErrTooOpen) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("start with %s mode 0644: %v, want ErrTooOpen naming the file and the chmod", rel, err)
			}
		})
	}
}
