package security

import (
	"os"
	"testing"

	"github.com/tarnfs/tarn/plugins/builtin"
)

// TestMain lets the test binary serve the built-in plugins, as tarn does,
// so node.Start can run its real plugin processes.
func TestMain(m *testing.M) {
	builtin.ServeIfAsked(os.Args)
	os.Exit(m.Run())
}
