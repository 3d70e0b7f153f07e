package main

import "syscall"

// devProcAttr makes a dev grid's node get SIGTERM when tarn dev's thread
// that started it ends, even when tarn dev itself is killed.
func devProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
