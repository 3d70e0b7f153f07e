package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/node"
)

// TestFindNode checks how put, get and status find the node (flag, then
// TARN_NODE) and the one-line errors when it is not there.
func TestFindNode(t *testing.T) {
	bin := buildTarn(t)
	root := t.TempDir()
	// A pid that surely is gone: a process that ran and was reaped.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	write := func(name string, in node.Info) string {
		dir := filepath.Join(root, name)
		os.MkdirAll(dir, 0o755)
		b, _ := json.Marshal(in)
		os.WriteFile(filepath.Join(dir, node.InfoFile), b, 0o644)
		return dir
	}
	stale := write("stale", node.Info{Pid: dead.Process.Pid, Roles: []string{"client"}, APIURL: "http://127.0.0.1:1"})
	storage := write("storage", node.Info{Pid: os.Getpid(), Roles: []string{"storage"}})
	oldStorage := write("old-storage", node.Info{Pid: os.Getpid(), Roles: []string{"storage"}})
	noToken := write("notoken", node.Info{Pid: os.Getpid(), Roles: []string{"client"}, APIURL: "http://127.0.0.1:1", TokenFile: filepath.Join(root, "nope")})
	empty := filepath.Join(root, "empty")
	os.MkdirAll(empty, 0o755)

	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no node.json", nil, []string{"status", "--node", empty}, "node is not running"},
		{"from TARN_NODE", []string{"TARN_NODE=" + empty}, []string{"put", "-"}, empty + ": node is not running"},
		{"flag beats TARN_NODE", []string{"TARN_NODE=" + stale}, []string{"put", "--node", storage, "-"}, "runs no client"},
		{"status of a node without an API", nil, []string{"status", "--node", oldStorage}, "serves no API"},
		{"stale pid", nil, []string{"get", "--node", stale, "tarn:lit:nbswy3dp"}, "which is gone"},
		{"no token", nil, []string{"status", "--node", noToken}, "read api token"},
		{"bad cap before the node", nil, []string{"get", "--node", empty, "tarn:chk:x"}, "bad cap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, bin, tc.env, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q: want one line saying %q", r.code, r.stderr, tc.want)
			}
		})
	}
}
