package pluginkit

import (
	"os"

	"golang.org/x/sys/windows"
)

// exitWithParent ends the plugin once its parent is gone. Windows does not
// re-parent an orphan (its parent id stays), so the plugin waits on a handle
// to the parent process instead, opened at start while the parent lives.
func exitWithParent() {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(os.Getppid()))
	if err != nil {
		return // no guard; the host still kills its plugins when it stops
	}
	defer windows.CloseHandle(h)
	if ev, err := windows.WaitForSingleObject(h, windows.INFINITE); err == nil && ev == windows.WAIT_OBJECT_0 {
		os.Exit(3)
	}
}
