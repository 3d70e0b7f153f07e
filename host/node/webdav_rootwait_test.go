package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/node"
)

// A WebDAV account whose root_cap_file is missing makes start wait for
// storage servers before it creates the root: the log says so, with the
// longest wait, and says when the wait is over.
func TestWebDAVMissingRootLogsWait(t *testing.T) {
	var logs logSink
	g := newGrid(t, 3, &logs)
	dir := filepath.Join(t.TempDir(), "dav")
	p, err := conf.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Grid.Name = "test"
	p.Node.APIListen = "127.0.0.1:0"
	p.Client.Enabled = true
	p.Client.APIListen = "127.0.0.1:0"
	p.Client.Shares = conf.Shares{K: 2, H: 3, N: 3}
	p.Grid.Introducers = []string{g.intro.Info().IntroducerURL}
	hash, err := accounts.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	capFile := filepath.Join(dir, "alice.cap")
	p.Accounts = []conf.Account{{Name: "alice", PasswordHash: hash, RootCapFile: capFile}}
	p.WebDAV = []conf.WebDAV{{Enabled: true, Listen: "127.0.0.1:0", Prefix: "/", Accounts: []string{"alice"},
		AppleDouble: "keep", LockTimeout: conf.Duration(time.Hour)}}
	// The grid's secret, so that the new client may use its servers.
	gs, err := identity.LoadSecret(filepath.Join(g.dirs["client"], "private", "grid.secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Prepare(p, gs); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	var own logSink
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := node.Start(ctx, dir, node.Options{Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &own})})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, own.String())
	}
	t.Cleanup(func() { n.Stop() })
	if _, err := os.Stat(capFile); err != nil {
		t.Fatalf("root cap file not written: %v", err)
	}
	out := own.String()
	for _, want := range []string{
		`[INFO]  account root_cap_file missing: waiting for storage servers to create its root: account=alice servers=3`,
		"at_most=2m0s",
		`[INFO]  storage servers ready: creating the account's root: account=alice servers=3 waited=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not say %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "waiting for storage servers") != 1 {
		t.Errorf("want one wait line:\n%s", out)
	}
}
