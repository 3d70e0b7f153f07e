package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// devProcsEnv is the environment of one process of a dev grid. Every node
// of a dev grid shares this machine's cores, and a Go process sized for all
// of them wakes a second thread to look for work at every request and runs
// sysmon's 20 µs polls while busy: on 2 cores, five storage nodes each
// sized for 2 spent ~20% more CPU per 4 KiB put than sized for 1
// (docs/benchmarks.md, "Small puts at rclone's 4 files in flight"). So the
// introducer and each storage node get their share of the cores, at least
// one (GOMAXPROCS, which their plugin processes inherit); the client node,
// which does the encoding and hashing, keeps them all. A GOMAXPROCS the
// operator set is left alone.
func devProcsEnv(env []string, role string, storageNodes, cpus int) []string {
	if role == "client" {
		return env
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return env
		}
	}
	n := 1
	if storageNodes > 0 && cpus/storageNodes > 1 {
		n = cpus / storageNodes
	}
	return append(env, "GOMAXPROCS="+strconv.Itoa(n))
}

// devEnviron is devProcsEnv of this process's environment and cores.
func devEnviron(role string, storageNodes int) []string {
	return devProcsEnv(os.Environ(), role, storageNodes, runtime.NumCPU())
}
