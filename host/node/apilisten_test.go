package node_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/node"
)

// An API address already in use is reported at the profile line that set
// it, as other profile mistakes are: FILE:LINE: KEY: ...
func TestAPIListenInUseNamesProfileLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := filepath.Join(t.TempDir(), "intro")
	p, err := conf.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Grid.Name = "test"
	p.Node.APIListen = busy.Addr().String()
	p.Introducer.Enabled = true
	p.Introducer.Listen = []string{"tcp:127.0.0.1:0"}
	secret := make([]byte, 32)
	rand.Read(secret)
	if _, err := node.Prepare(p, secret); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tarn.toml")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "api_listen") {
			line = i + 1 // the first: [node] comes before [client]
			break
		}
	}
	if line == 0 {
		t.Fatalf("written profile has no api_listen line:\n%s", text)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, dir, node.Options{Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})})
	if err == nil {
		n.Stop()
		t.Fatal("node started on an API address in use")
	}
	want := fmt.Sprintf("%s:%d: node.api_listen: ", file, line)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %q, want it to contain %q and the bind error; profile:\n%s", err, want, text)
	}
}
