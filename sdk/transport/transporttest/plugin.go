package transporttest

import (
	"os/exec"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/transport"
)

// StartPlugin starts cmd as a transport plugin process the way a tarn host
// does (pluginkit.Start), with the fd channel offered when fast is true,
// and returns its client. The process is killed when the test ends.
//
// A plugin's own tests usually re-execute the test binary: cmd is
// exec.Command(os.Args[0]) with an environment variable that makes
// TestMain call the plugin's Serve instead of running tests.
func StartPlugin(t testing.TB, cmd *exec.Cmd, fast bool) (*transport.Client, *pluginkit.Process) {
	t.Helper()
	p, err := pluginkit.Start(pluginkit.StartOptions{
		Kind:      pluginkit.KindTransport,
		Version:   transport.ProtocolVersion,
		Name:      "transporttest",
		Cmd:       cmd,
		Logger:    hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn}),
		FastPath:  fast,
		ArenaSize: 1 << 20, // a transport uses the fd channel, not the arena
		NewPlugin: transport.NewHostPlugin,
	})
	if err != nil {
		t.Fatalf("start transport plugin: %v", err)
	}
	t.Cleanup(p.Kill)
	c, ok := p.Raw.(*transport.Client)
	if !ok {
		t.Fatalf("transport plugin dispensed %T, want *transport.Client", p.Raw)
	}
	if c.FastPath() != fast {
		t.Fatalf("fast path = %v, want %v (plugin says: %q)", c.FastPath(), fast, c.FdError())
	}
	return c, p
}
