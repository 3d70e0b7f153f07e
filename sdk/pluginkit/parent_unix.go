//go:build unix

package pluginkit

import (
	"os"
	"time"
)

// exitWithParent ends the plugin once its parent is gone (re-parented).
func exitWithParent() {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			os.Exit(3)
		}
	}
}
