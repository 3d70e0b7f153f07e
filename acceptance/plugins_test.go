//go:build acceptance

package acceptance

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tarnBin is the binary under test: TARN_BIN, or one built for this test.
func plTarnBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("TARN_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "tarn")
	if out, err := exec.Command("go", "build", "-o", bin, "../host/cmd/tarn").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type plDevNode struct {
	Name, Role, Dir string
	Pid             int
}

// startDev runs `tarn dev` until the test ends and returns its nodes and
// the client's node folder.
func plStartDev(t *testing.T, bin, dir string) ([]plDevNode, string) {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--dir", dir, "--storage-nodes", "3", "--timeout", "60s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var nodes []plDevNode
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			for _, n := range nodes {
				syscall.Kill(n.Pid, syscall.SIGKILL)
			}
			<-done
		}
	})
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && strings.HasPrefix(sc.Text(), "tarn dev grid is up") {
				seen = true
				up <- true
			}
		}
		if !seen {
			up <- false
		}
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("tarn dev ended before the grid was up: %s", stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("grid not up after 90s: %s", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ep struct {
		Client struct {
			NodeDir string `json:"node_dir"`
		} `json:"client"`
		Nodes []plDevNode `json:"nodes"`
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatal(err)
	}
	nodes = ep.Nodes
	return nodes, ep.Client.NodeDir
}

// pluginChildren maps "KIND NAME" to the pid of each plugin process a node
// runs, read from /proc.
func plChildren(t *testing.T, pid int) map[string]int {
	t.Helper()
	out := map[string]int{}
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			cmdline, _ := os.ReadFile("/proc/" + c + "/cmdline")
			args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
			if len(args) == 5 && args[1] == "plugin" && args[2] == "serve" {
				out[args[3]+" "+args[4]], _ = strconv.Atoi(c)
			}
		}
	}
	return out
}

func plGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func plWaitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !plGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs 5s after its kill", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func plTarn(t *testing.T, bin, node string, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TARN_NODE="+node)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// kill -9 of a running grid's plugins (the client's codec, every storage
// node's storage backend and transport): the grid restarts them, new
// uploads work, and what was stored before is still readable. kill -9 of a
// node takes its plugins with it.
func TestGridSurvivesKilledPlugins(t *testing.T) {
	bin := plTarnBin(t)
	nodes, client := plStartDev(t, bin, filepath.Join(t.TempDir(), "dev"))

	before := make([]byte, 2<<20+5)
	rand.Read(before)
	out, errOut, code := plTarn(t, bin, client, before, "put", "-")
	if code != 0 {
		t.Fatalf("put before the kills: %s", errOut)
	}
	capBefore := strings.TrimSpace(out)

	killed := 0
	var storageNode plDevNode
	for _, n := range nodes {
		ps := plChildren(t, n.Pid)
		var victims []string
		switch n.Role {
		case "client":
			victims = []string{"codec reedsolomon"}
		case "storage":
			victims = []string{"storage disk", "transport tcp"}
			storageNode = n
		}
		for _, v := range victims {
			pid, ok := ps[v]
			if !ok {
				t.Fatalf("node %s runs no %s plugin (it runs %v)", n.Name, v, ps)
			}
			syscall.Kill(pid, syscall.SIGKILL)
			plWaitGone(t, pid, n.Name+" "+v)
			killed++
		}
	}
	t.Logf("killed %d plugin processes", killed)

	after := make([]byte, 1<<20+3)
	rand.Read(after)
	out, errOut, code = plTarn(t, bin, client, after, "put", "-")
	if code != 0 {
		t.Fatalf("put after the kills: %s", errOut)
	}
	capAfter := strings.TrimSpace(out)
	for _, tc := range []struct {
		name, cap string
		want      []byte
	}{{"stored before the kills", capBefore, before}, {"stored after the kills", capAfter, after}} {
		got, errOut, code := plTarn(t, bin, client, nil, "get", tc.cap)
		if code != 0 || !bytes.Equal([]byte(got), tc.want) {
			t.Errorf("get %s: exit %d, %d bytes, want %d: %s", tc.name, code, len(got), len(tc.want), errOut)
		}
	}

	st, _, _ := plTarn(t, bin, client, nil, "status", "--json")
	var status struct {
		Plugins []struct {
			Kind     string `json:"kind"`
			Restarts int    `json:"restarts"`
			Health   string `json:"health"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(st), &status); err != nil {
		t.Fatalf("status --json: %v: %s", err, st)
	}
	seen := false
	for _, p := range status.Plugins {
		if p.Kind == "codec" {
			seen = true
			if p.Restarts < 1 || p.Health != "ok" {
				t.Errorf("client codec status %+v: want a restart and ok", p)
			}
		}
	}
	if !seen {
		t.Errorf("status lists no codec plugin: %s", st)
	}

	// A storage node killed with SIGKILL takes its plugins with it.
	ps := plChildren(t, storageNode.Pid)
	if len(ps) == 0 {
		t.Fatalf("storage node %s runs no plugins", storageNode.Name)
	}
	syscall.Kill(storageNode.Pid, syscall.SIGKILL)
	for what, pid := range ps {
		plWaitGone(t, pid, storageNode.Name+"'s "+what+" plugin, after its node's SIGKILL,")
	}
}
