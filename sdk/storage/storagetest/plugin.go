package storagetest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

// StartPlugin starts cmd as a storage plugin process the way a tarn host
// does (pluginkit.Start), with the shared-memory arena offered when fast
// is true, hands it settings through Configure when settings is not nil,
// and returns its client. The process is killed when the test ends.
//
// A plugin's own tests usually re-execute the test binary: cmd is
// exec.Command(os.Args[0]) with an environment variable that makes
// TestMain call the plugin's Serve instead of running tests.
func StartPlugin(t testing.TB, cmd *exec.Cmd, fast bool, settings []byte) (*storage.Client, *pluginkit.Process) {
	t.Helper()
	p, err := pluginkit.Start(pluginkit.StartOptions{
		Kind:      pluginkit.KindStorage,
		Version:   storage.ProtocolVersion,
		Name:      "storagetest",
		Cmd:       cmd,
		Logger:    hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn}),
		FastPath:  fast,
		NewPlugin: storage.NewHostPlugin,
	})
	if err != nil {
		t.Fatalf("start storage plugin: %v", err)
	}
	t.Cleanup(p.Kill)
	c, ok := p.Raw.(*storage.Client)
	if !ok {
		t.Fatalf("storage plugin dispensed %T, want *storage.Client", p.Raw)
	}
	if c.FastPath() != fast {
		t.Fatalf("fast path = %v, want %v (plugin says: %q)", c.FastPath(), fast, c.ArenaError())
	}
	if settings != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Configure(ctx, settings); err != nil {
			t.Fatalf("configure storage plugin: %v", err)
		}
	}
	return c, p
}
