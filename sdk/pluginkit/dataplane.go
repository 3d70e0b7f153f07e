package pluginkit

import (
	"errors"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// EnvDataPlane, set in the host's environment to "off" (or "0", "false",
// "no"), makes Start offer no data plane even to plugins whose profile sets
// fast_path: every payload then goes over streaming gRPC, the path that
// plugins take on Windows. It is for tests and for ruling the data plane
// out when chasing a fault; any other value leaves the profile's choice.
const EnvDataPlane = "TARN_DATAPLANE"

// DataPlaneOff reports whether EnvDataPlane turns the data plane off.
func DataPlaneOff() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvDataPlane))) {
	case "off", "0", "false", "no":
		return true
	}
	return false
}

// noDataPlane logs why a plugin starts without the data plane: at debug
// level where the system has none (Windows), as a warning when making it
// failed (a full temporary directory on macOS or a BSD).
func noDataPlane(log hclog.Logger, what string, err error) {
	if errors.Is(err, errors.ErrUnsupported) {
		log.Debug("data plane not offered: not supported here", "plugin", what, "error", err)
		return
	}
	log.Warn("data plane not offered, payloads go over gRPC", "plugin", what, "error", err)
}
