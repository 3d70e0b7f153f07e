//go:build !linux

package main

import "syscall"

// devProcAttr has no parent-death signal to ask for off Linux: the nodes of
// a killed tarn dev keep running there until stopped (Ctrl-C on tarn dev
// stops them all).
func devProcAttr() *syscall.SysProcAttr { return nil }
