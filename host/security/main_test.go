package security

import (
	"fmt"
	"os"
	"testing"

	"github.com/tarnfs/tarn/plugins/builtin"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// TestMain lets the test binary serve the built-in plugins, as tarn does,
// so node.Start can run its real plugin processes.
func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		kind, name := pluginkit.Kind(os.Args[3]), os.Args[4]
		if e, ok := builtin.Lookup(kind, name); ok {
			e.Serve()
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "no built-in plugin %s %s\n", kind, name)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
