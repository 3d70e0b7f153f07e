package pluginkit

import (
	"os/exec"
	"syscall"
)

// dieWithHost has the kernel SIGKILL the plugin when the host's thread that
// started it ends, even when the host itself was killed with SIGKILL.
func dieWithHost(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
