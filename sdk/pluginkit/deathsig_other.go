//go:build !linux

package pluginkit

import "os/exec"

// dieWithHost has nothing to set where there is no parent-death signal
// (macOS, the BSDs, Windows): the plugin's own guard, exitWithParent in
// Serve, ends it within half a second of its host (at once on Windows).
func dieWithHost(cmd *exec.Cmd) {}
