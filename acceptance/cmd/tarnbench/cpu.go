package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time process pid has used so far,
// and whether it could be read.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses, so fields count from the last ')'.
func parseStatCPU(stat string) (time.Duration, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11]; stime f[12].
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 63)
	s, err2 := strconv.ParseUint(f[12], 10, 63)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * clockTick, true
}

// children lists the child processes of pid (from every thread's
// /proc/PID/task/TID/children).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(s); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// treeCPU sums the CPU time of the processes in roots and all their
// descendants (a node and its plugin processes).
func treeCPU(roots ...int) time.Duration {
	var total time.Duration
	seen := map[int]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		if d, ok := procCPU(pid); ok {
			total += d
		}
		for _, c := range children(pid) {
			walk(c)
		}
	}
	for _, p := range roots {
		walk(p)
	}
	return total
}

// cpuUse is the CPU time taken during one transfer by the grid's
// processes (all nodes and their plugins) and by the client node alone.
type cpuUse struct{ grid, client time.Duration }

// cpuSnapshot reads the grid's and the client's CPU time so far.
func (g *devGrid) cpuSnapshot() cpuUse {
	var nodes []int
	for _, n := range g.ep.Nodes {
		nodes = append(nodes, n.Pid)
	}
	return cpuUse{grid: treeCPU(nodes...), client: treeCPU(g.pid)}
}

// nsPerByte is CPU time per byte moved.
func nsPerByte(d time.Duration, size int64) float64 { return float64(d.Nanoseconds()) / float64(size) }

// addCPU adds the CPU cost of a transfer in CPU ns per byte: of every
// tarn process (the CLI, the grid's nodes and their plugins), of the client
// node with its plugins, and of the other nodes (storage nodes and the
// introducer, with their plugins). The first two are read against the
// one-core pipeline's cost per byte, the ratio being ceiling cost /
// measured cost: as for the rates, 1 is as cheap as the ceiling and lower
// is costlier.
func addCPU(r *Report, key, what string, size int64, grid, client, cli time.Duration) {
	ceil, ok := r.find("ceiling.pipeline.1core")
	for i, f := range []Figure{
		{Key: "e2e.cpu." + key, Name: "CPU per byte, all tarn processes, " + what, Value: nsPerByte(grid+cli, size), Unit: "CPU ns/B",
			Note: fmt.Sprintf("the CLI (%.2f ns/B), every node and its plugins", nsPerByte(cli, size))},
		{Key: "e2e.cpu.client." + key, Name: "CPU per byte, client node and its plugins, " + what, Value: nsPerByte(client, size), Unit: "CPU ns/B"},
		{Key: "e2e.cpu.servers." + key, Name: "CPU per byte, storage nodes, introducer and their plugins, " + what, Value: nsPerByte(grid-client, size), Unit: "CPU ns/B"},
	} {
		if i < 2 && ok && ceil.Value > 0 && f.Value > 0 {
			f.Ceiling = "ceiling.pipeline.1core (as ns/B)"
			f.CeilingValue = 1e3 / ceil.Value
			f.Ratio = f.CeilingValue / f.Value
		}
		r.add(f)
	}
}
