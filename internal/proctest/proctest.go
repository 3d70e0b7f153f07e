// Package proctest holds the few process calls that tests across the tree
// need on every system tarn builds for: kill a process by pid, see whether
// a pid still exists, and the CPU time this process has used. On Unix they
// are the system calls the tests always made (kill, getrusage).
package proctest
