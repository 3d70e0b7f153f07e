//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
)

// devGrid is a running `tarn dev` process.
type devGrid struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
	ep   Endpoints
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// startDev runs `tarn dev` and waits until it prints that the grid is up.
func startDev(t *testing.T, bin, dir string, storage int) *devGrid {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--dir", dir, "--storage-nodes", itoa(storage), "--timeout", "60s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devGrid{cmd: cmd, done: make(chan struct{}), out: &bytes.Buffer{}}
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			d.out.WriteString(sc.Text() + "\n")
			if !seen && strings.HasPrefix(sc.Text(), "tarn dev grid is up") {
				seen = true
				up <- true
			}
		}
		if !seen {
			up <- false
		}
	}()
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.stop(t) })
	select {
	case ok := <-up:
		if !ok {
			<-d.done
			t.Fatalf("tarn dev ended before the grid was up: %s", stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("tarn dev: grid not up after 90s: %s", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, EndpointsFile))
	if err != nil {
		t.Fatal(err)
	}
	// endpoints.json holds the dev passwords.
	if st, err := os.Stat(filepath.Join(dir, EndpointsFile)); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("endpoints.json: mode %04o, want 0600", st.Mode().Perm())
	}
	if err := json.Unmarshal(b, &d.ep); err != nil {
		t.Fatalf("endpoints.json: %v", err)
	}
	return d
}

// stop sends SIGINT and waits for tarn dev to end; it kills it (and the
// nodes it listed) if it does not.
func (d *devGrid) stop(t *testing.T) {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Errorf("tarn dev did not stop within 30s of SIGINT")
		d.cmd.Process.Kill()
		for _, n := range d.ep.Nodes {
			syscall.Kill(n.Pid, syscall.SIGKILL)
		}
		<-d.done
	}
}

// runFor runs the binary like run, but sends SIGQUIT (a goroutine dump on
// its stderr) if it has not ended within d.
func runFor(t *testing.T, d time.Duration, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after %v:\n%s", args, d, e.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{o.String(), e.String(), code}
}

// descendants lists every process below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; cut after ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDevPutGetRestart(t *testing.T) {
	bin := buildTarn(t)
	root := t.TempDir()
	dir := filepath.Join(root, "dev")
	t0 := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	d := startDev(t, bin, dir, 3)

	// endpoints.json names every process, alive, in its own folder.
	if len(d.ep.Nodes) != 5 {
		t.Fatalf("endpoints.json lists %d nodes, want 5: %+v", len(d.ep.Nodes), d.ep.Nodes)
	}
	roles := map[string]int{}
	for _, n := range d.ep.Nodes {
		roles[n.Role]++
		if !alive(n.Pid) || filepath.Dir(n.Dir) != dir {
			t.Errorf("node %s: pid %d alive %v, dir %s", n.Name, n.Pid, alive(n.Pid), n.Dir)
		}
	}
	if roles["introducer"] != 1 || roles["storage"] != 3 || roles["client"] != 1 {
		t.Errorf("roles %v", roles)
	}
	if !strings.HasPrefix(d.ep.Introducer, "tarn://") || !strings.HasPrefix(d.ep.Client.APIURL, "http://127.0.0.1:") {
		t.Errorf("endpoints: %+v", d.ep)
	}
	env := []string{"TARN_NODE=" + d.ep.Client.NodeDir}
	if r := runFor(t, 30*time.Second, bin, "dev", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "in use by another tarn dev") {
		t.Errorf("second tarn dev on the same folder: exit %d, %q", r.code, r.stderr)
	}

	data := make([]byte, 3<<20+17)
	rand.Read(data)
	in := filepath.Join(root, "in.bin")
	os.WriteFile(in, data, 0o644)
	put := run(t, bin, env, "put", in)
	if put.code != 0 {
		t.Fatalf("put: exit %d: %s", put.code, put.stderr)
	}
	capStr := strings.TrimSpace(put.stdout)
	if !strings.HasPrefix(capStr, "tarn:chk:") || put.stderr != "" {
		t.Fatalf("put printed %q, stderr %q", put.stdout, put.stderr)
	}

	out := filepath.Join(root, "out.bin")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout []byte // nil: not checked
		errHas string
	}{
		{"get to file", []string{"get", capStr, out}, 0, []byte{}, ""},
		{"get to stdout", []string{"get", capStr}, 0, data, ""},
		{"get to dash", []string{"--node", d.ep.Client.NodeDir, capStr, "-"}, 0, data, ""},
		{"bad cap", []string{"get", "tarn:chk:nonsense"}, 1, []byte{}, "bad cap"},
		{"not a cap", []string{"get", "hello"}, 1, []byte{}, "does not start with"},
		{"verify cap", []string{"get", "tarn:chkv:" + strings.Repeat("a", 52) + ":" + strings.Repeat("a", 52) + ":2:3:100"}, 1, []byte{}, "bad cap"},
		{"missing file", []string{"put", filepath.Join(root, "nope")}, 1, []byte{}, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] == "--node" {
				args = append([]string{"get"}, args...)
			}
			r := run(t, bin, env, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
			if tc.stdout != nil && !bytes.Equal([]byte(r.stdout), tc.stdout) {
				t.Errorf("stdout: %d bytes, want %d", len(r.stdout), len(tc.stdout))
			}
			if tc.errHas != "" {
				if !strings.Contains(r.stderr, tc.errHas) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("stderr %q: want one line saying %q", r.stderr, tc.errHas)
				}
			}
		})
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Errorf("get to file: %d bytes, want the %d put", len(got), len(data))
	}

	// put from a pipe: the same bytes, the same cap.
	cmd := exec.Command(bin, "put", "-")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = io.MultiReader(bytes.NewReader(data))
	pipeOut, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(pipeOut)) != capStr {
		t.Errorf("put from a pipe: %v, cap %q want %q", err, pipeOut, capStr)
	}

	st := run(t, bin, env, "status", "--json")
	var status struct {
		Known   int `json:"servers_known"`
		Plugins []struct {
			Pid int `json:"pid"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || status.Known != 3 {
		t.Fatalf("status --json: %v, known %d: %s", err, status.Known, st.stdout)
	}
	if txt := run(t, bin, env, "status"); !strings.Contains(txt.stdout, "3 known") {
		t.Errorf("status: %q", txt.stdout)
	}

	// SIGINT stops every process: nodes and the client's plugins.
	pids := []int{}
	for _, n := range d.ep.Nodes {
		pids = append(pids, n.Pid)
	}
	for _, p := range status.Plugins {
		pids = append(pids, p.Pid)
	}
	all := descendants(d.cmd.Process.Pid)
	if len(all) < 5+2+3*2 { // nodes, client plugins, storage plugins (+ introducer's)
		t.Errorf("tarn dev has %d descendant processes, want at least 13", len(all))
	}
	pids = append(pids, all...)
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("tarn dev did not stop within 30s of SIGINT")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("tarn dev exit %d after SIGINT", code)
	}
	time.Sleep(200 * time.Millisecond)
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after tarn dev stopped", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(d.ep.Client.NodeDir, "node.json")); !os.IsNotExist(err) {
		t.Errorf("client node.json still there after a clean stop: %v", err)
	}
	if r := run(t, bin, env, "get", capStr); r.code == 0 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("get with the grid down: exit %d, %q", r.code, r.stderr)
	}

	phase("grid up, put/get done, stopped")
	// A node that cannot come up: one clear line naming it, and its log.
	sp, err := conf.Load(filepath.Join(dir, "storage-2"))
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", strings.TrimPrefix(sp.Storage.Listen[0], "tcp:"))
	if err != nil {
		t.Fatalf("occupy storage-2's port: %v", err)
	}
	fail := runFor(t, 60*time.Second, bin, "dev", "--dir", dir, "--storage-nodes", "3", "--timeout", "30s")
	busy.Close()
	if fail.code == 0 || !strings.Contains(fail.stderr, "node storage-2") || !strings.Contains(fail.stderr, "address already in use") {
		t.Errorf("dev with storage-2's port taken: exit %d, stderr:\n%s", fail.code, fail.stderr)
	}

	phase("failing run done")
	// Again on the same folder: same keys and ports, the file is still there.
	d2 := startDev(t, bin, dir, 3)
	if d2.ep.Introducer != d.ep.Introducer || d2.ep.Client.APIURL != d.ep.Client.APIURL {
		t.Errorf("restart changed endpoints: %q %q -> %q %q", d.ep.Introducer, d.ep.Client.APIURL, d2.ep.Introducer, d2.ep.Client.APIURL)
	}
	if r := run(t, bin, env, "get", capStr); r.code != 0 || r.stdout != string(data) {
		t.Errorf("get after restart: exit %d, %d bytes: %s", r.code, len(r.stdout), r.stderr)
	}
	if r := run(t, bin, env, "put", in); strings.TrimSpace(r.stdout) != capStr {
		t.Errorf("put after restart: cap %q, want %q (%s)", r.stdout, capStr, r.stderr)
	}

	phase("restarted and read back")
	// A storage node killed: the rest run on and K=2 of 3 still read.
	syscall.Kill(d2.ep.Nodes[1].Pid, syscall.SIGKILL)
	if r := run(t, bin, env, "get", capStr); r.code != 0 || r.stdout != string(data) {
		t.Errorf("get with a storage node killed: exit %d, %d bytes: %s", r.code, len(r.stdout), r.stderr)
	}
	select {
	case <-d2.done:
		t.Errorf("tarn dev ended when one storage node died")
	default:
	}

	phase("read with a storage node killed")
	// tarn dev killed outright: its nodes get SIGTERM (Pdeathsig) and
	// take their plugins with them.
	left := descendants(d2.cmd.Process.Pid)
	d2.cmd.Process.Kill()
	<-d2.done
	killed := time.Now()
	deadline := killed.Add(20 * time.Second)
	defer func() {
		t.Logf("every process gone %v after tarn dev was killed", time.Since(killed).Round(time.Millisecond))
	}()
	for _, pid := range left {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("pid %d outlived a killed tarn dev", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestDevShares(t *testing.T) {
	cases := []struct {
		nodes   int
		k, h, n int
	}{
		{1, 1, 1, 1}, {2, 1, 2, 2}, {3, 2, 3, 3}, {4, 2, 4, 4}, {5, 3, 4, 5}, {9, 3, 4, 5},
	}
	for _, tc := range cases {
		s := devShares(tc.nodes)
		if s.K != tc.k || s.H != tc.h || s.N != tc.n {
			t.Errorf("%d nodes: k=%d h=%d n=%d, want %d %d %d", tc.nodes, s.K, s.H, s.N, tc.k, tc.h, tc.n)
		}
	}
}
