//go:build !unix && !windows

package pluginkit

// exitWithParent has no way to watch the parent here (plan9, wasm); the
// host still kills its plugins when it stops.
func exitWithParent() {}
