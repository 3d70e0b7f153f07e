//go:build acceptance

package acceptance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// plugin is one plugin process of a node.
type plugin struct {
	Kind, Name string
	Pid        int
}

// nodePlugins are the built-in plugin processes below a node's process.
func nodePlugins(t testing.TB, n *Node) []plugin {
	t.Helper()
	var out []plugin
	for _, p := range children(n.Pid) {
		if k, name, ok := pluginKindName(p); ok {
			out = append(out, plugin{k, name, p.Pid})
		}
	}
	return out
}

// findPlugin is waitPlugin that returns 0 instead of failing.
func findPlugin(n *Node, kind, name string, old int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		for _, p := range children(n.Pid) {
			if k, nm, ok := pluginKindName(p); ok && k == kind && nm == name && p.Pid != old {
				return p.Pid
			}
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPlugin waits until n has a live kind/name plugin process other than
// old, and returns its pid.
func waitPlugin(t testing.TB, n *Node, kind, name string, old int, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, p := range nodePlugins(t, n) {
			if p.Kind == kind && p.Name == name && p.Pid != old {
				return p.Pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new %s %s plugin process %v after pid %d was killed; children: %v", n.Name, kind, name, d, old, children(n.Pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bytesUploaded reads the client's grid counter of share bytes sent.
func bytesUploaded(t testing.TB, g *Grid) float64 {
	st, r := g.status(t, g.Client)
	if r.Code != 0 {
		return -1
	}
	v, _ := st.GridStats["BytesUploaded"].(float64)
	return v
}

// TestPluginKill kills -9 each built-in plugin process of a client node
// and of a storage node while an upload runs: the node starts the plugin
// again, the next put and get succeed, and nothing stored before is lost.
func TestPluginKill(t *testing.T) {
	g := startGrid(t, GridOptions{})
	seg := segmentSize(t, g.Client)
	old := genBytes(500, 2*seg+5)
	oldCap := g.mustPut(t, g.Client, bytes.NewReader(old))
	targets := []*Node{g.Client, g.Storage()[0]}
	seed := uint64(510)
	for _, n := range targets {
		plugins := nodePlugins(t, n)
		if len(plugins) < 2 {
			t.Fatalf("%s has %d plugin processes, want at least 2: %v", n.Name, len(plugins), children(n.Pid))
		}
		for _, p := range plugins {
			t.Run(fmt.Sprintf("%s %s %s", n.Name, p.Kind, p.Name), func(t *testing.T) {
				seed++
				// An upload in flight; the plugin dies once share bytes flow.
				before := bytesUploaded(t, g)
				logMark := len(g.logText(g.Client))
				type putResult struct {
					cap string
					r   Result
				}
				done := make(chan putResult, 1)
				go func() {
					c, r := g.put(t, g.Client, newGen(seed, 24<<20))
					done <- putResult{c, r}
				}()
				deadline := time.Now().Add(60 * time.Second)
				for bytesUploaded(t, g) <= before && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
					t.Fatalf("kill -9 %s %s (pid %d): %v", p.Kind, p.Name, p.Pid, err)
				}
				killedAt := time.Now()
				res := <-done
				if res.r.Code != 0 && n != g.Client {
					// One storage server failing mid-upload is replaced by
					// another (5 servers, H=4): the upload must succeed.
					t.Errorf("the upload in flight failed although only one storage server lost a plugin: %s", lastLine(res.r.Stderr))
				}
				if res.r.Code != 0 {
					t.Logf("the upload in flight failed: %s", lastLine(res.r.Stderr))
					for _, l := range strings.Split(g.logText(g.Client)[logMark:], "\n") {
						if strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]") || strings.Contains(l, "did not answer") {
							t.Logf("client log: %s", l)
						}
					}
				} else {
					t.Logf("the upload in flight succeeded")
				}
				// What the client's status says of its plugins must be
				// true: a plugin shown healthy has a live process.
				if n == g.Client {
					st, _ := g.status(t, g.Client)
					for _, sp := range st.Plugins {
						if sp.Kind == p.Kind && sp.Name == p.Name {
							t.Logf("status after the kill: %+v", sp)
							if sp.Health == "ok" && !alive(sp.Pid) {
								t.Errorf("status shows %s %s healthy with pid %d, which is dead", p.Kind, p.Name, sp.Pid)
							}
						}
					}
				}
				// The next call works (the host restarts the plugin, at once
				// or on that call).
				data := genBytes(seed+1000, seg+77)
				c := g.mustPut(t, g.Client, bytes.NewReader(data))
				newPid := findPlugin(n, p.Kind, p.Name, p.Pid, 3*time.Second)
				if newPid == 0 && p.Kind == "transport" {
					// The host restarts a plugin on its next call; the put
					// above reused pooled connections. Make the node dial
					// (or accept) anew: restart a storage node it talks to.
					other := g.Storage()[len(g.Storage())-1]
					t.Logf("transport not restarted yet: restarting %s so that %s must dial", other.Name, n.Name)
					g.kill(t, other)
					g.restart(t, other)
					g.waitServers(t, g.Client, len(g.Storage()), 60*time.Second)
					c2 := g.mustPut(t, g.Client, bytes.NewReader(genBytes(seed+2000, seg+99)))
					if sum, _, r := g.getHash(t, g.Client, c2); r.Code != 0 || sum != genHash(seed+2000, seg+99) {
						t.Fatalf("get after the transport restart: %v", r)
					}
				}
				newPid = waitPlugin(t, n, p.Kind, p.Name, p.Pid, 10*time.Second)
				figure(t, "%s %s of the %s killed mid-upload: next put done and plugin running again as pid %d %v after the kill",
					p.Kind, p.Name, n.Role, newPid, time.Since(killedAt).Round(time.Millisecond))
				for _, want := range []struct {
					cap  string
					data []byte
				}{{c, data}, {oldCap, old}} {
					var out bytes.Buffer
					if r := g.get(t, g.Client, want.cap, &out); r.Code != 0 || !bytes.Equal(out.Bytes(), want.data) {
						t.Fatalf("get after the plugin restart: %d bytes (want %d): %v", out.Len(), len(want.data), r)
					}
				}
				if res.r.Code == 0 {
					if sum, _, r := g.getHash(t, g.Client, res.cap); r.Code != 0 || sum != genHash(seed, 24<<20) {
						t.Fatalf("the upload that succeeded across the kill does not read back: %v", r)
					}
				}
				if n == g.Client {
					st, _ := g.status(t, g.Client)
					found := false
					for _, sp := range st.Plugins {
						if sp.Kind == p.Kind && sp.Name == p.Name {
							found = true
							if sp.Pid != newPid || sp.Restarts < 1 || sp.Health != "ok" {
								t.Errorf("status shows %s %s as %+v; want pid %d, health ok, restarts >= 1", p.Kind, p.Name, sp, newPid)
							}
						}
					}
					if !found {
						t.Errorf("status lists no %s %s plugin: %+v", p.Kind, p.Name, st.Plugins)
					}
				}
			})
		}
	}
}

// TestNodeKillTakesPlugins kills -9 a storage node and the client node:
// their plugin processes are gone within a few seconds.
func TestNodeKillTakesPlugins(t *testing.T) {
	g := startGrid(t, GridOptions{})
	for _, n := range []*Node{g.Storage()[0], g.Client} {
		t.Run(n.Name, func(t *testing.T) {
			plugins := nodePlugins(t, n)
			if len(plugins) == 0 {
				t.Fatalf("%s has no plugin processes: %v", n.Name, children(n.Pid))
			}
			var pids []int
			for _, p := range plugins {
				pids = append(pids, p.Pid)
			}
			g.kill(t, n)
			start := time.Now()
			if left := waitGone(pids, 5*time.Second); len(left) > 0 {
				var ps []string
				for _, pid := range left {
					p, _ := readProc(pid)
					ps = append(ps, p.String())
				}
				t.Fatalf("plugins of %s still alive 5s after kill -9 of the node: %s", n.Name, strings.Join(ps, "; "))
			}
			figure(t, "%d plugin processes of a killed %s gone within %v", len(pids), n.Role, time.Since(start).Round(time.Millisecond))
		})
	}
}

// pluginRow is a row of `tarn plugin list --json`.
type pluginRow struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Path     string `json:"path"`
	SHA256   string `json:"sha256"`
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
	Pid      int    `json:"pid"`
	Health   string `json:"health"`
	Error    string `json:"error"`
}

// checkPluginTable checks the table of `tarn plugin list DIR`: a header
// with KIND NAME VERSION PID HEALTH and one row per kind.
func checkPluginTable(t *testing.T, out string, kinds ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	head := strings.Fields(lines[0])
	for _, col := range []string{"KIND", "NAME", "VERSION", "PID", "HEALTH"} {
		if !contains(head, col) {
			t.Errorf("plugin list header %q has no %s column", lines[0], col)
		}
	}
	for _, k := range kinds {
		found := false
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) > 0 && f[0] == k {
				found = true
			}
		}
		if !found {
			t.Errorf("plugin list shows no %s plugin:\n%s", k, out)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPluginList: `tarn plugin list DIR` shows each plugin's kind, name,
// version, pid and health, for a node that is not running and for the
// nodes of a running grid.
func TestPluginList(t *testing.T) {
	g := startGrid(t, GridOptions{})
	stopped := filepath.Join(t.TempDir(), "stopped")
	mustTarn(t, CLI{}, "init", "--profile", "storage", stopped)
	cases := []struct {
		name    string
		dir     string
		running *Node
	}{
		{"stopped storage node", stopped, nil},
		{"running client node", g.Client.Dir, g.Client},
		{"running storage node", g.Storage()[0].Dir, g.Storage()[0]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tarn(t, CLI{Timeout: time.Minute}, "plugin", "list", tc.dir)
			if r.Code != 0 {
				t.Errorf("plugin list: %v", r)
			} else {
				checkPluginTable(t, r.Stdout, "transport")
				t.Logf("\n%s", r.Stdout)
			}
			r = tarn(t, CLI{Timeout: time.Minute}, "plugin", "list", "--json", tc.dir)
			var rows []pluginRow
			if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
				t.Fatalf("plugin list --json: %v\n%v", err, r)
			}
			if len(rows) == 0 {
				t.Fatalf("plugin list --json lists no plugin: %v", r)
			}
			var live map[string]int
			if tc.running != nil {
				live = map[string]int{}
				for _, p := range nodePlugins(t, tc.running) {
					live[p.Kind+" "+p.Name] = p.Pid
				}
			}
			for _, row := range rows {
				if row.Kind == "" || row.Name == "" || row.Version == "" || row.Health != "ok" || row.Pid <= 0 {
					t.Errorf("plugin row %+v: want kind, name, version, a pid and health ok", row)
				}
				// A running node's plugins are what an operator asks about.
				if pid, ok := live[row.Kind+" "+row.Name]; ok && pid != row.Pid {
					t.Errorf("BUG: plugin list of the running node %s shows %s %s with pid %d; the node's plugin process is pid %d",
						tc.running.Name, row.Kind, row.Name, row.Pid, pid)
				}
			}
		})
	}
}

// buildReplica builds the example third-party codec plugin from sdk/
// alone, as its own binary, and returns its path and SHA-256.
func buildReplica(t *testing.T) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tarn-codec-replica")
	cmd := exec.Command("go", "build", "-o", bin, "./sdk/examples/codec-replica")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build codec-replica: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return bin, hex.EncodeToString(sum[:])
}

// TestExternalPlugin loads the example replication codec, built on its own
// from sdk/, by path and SHA-256 pin in a client profile: files round-trip
// through the grid with it; with a wrong pin the node, config check and
// plugin list refuse it with a clear error.
func TestExternalPlugin(t *testing.T) {
	bin, sum := buildReplica(t)
	g := startGrid(t, GridOptions{})
	codec := func(pin string) func(string) string {
		return func(p string) string {
			p = setTOML(p, "plugins.codec", "name", `""`)
			p = setTOML(p, "plugins.codec", "path", fmt.Sprintf("%q", bin))
			p = setTOML(p, "plugins.codec", "sha256", fmt.Sprintf("%q", pin))
			// Replication: any one share is the whole segment.
			p = setTOML(p, "client.shares", "k", "1")
			p = setTOML(p, "client.shares", "h", "3")
			return setTOML(p, "client.shares", "n", "3")
		}
	}

	t.Run("pinned right: round trip", func(t *testing.T) {
		n := g.addClient(t, "replica-client", GridOptions{Edit: codec(sum)})
		found := false
		for _, p := range children(n.Pid) {
			found = found || (len(p.Cmdline) > 0 && p.Cmdline[0] == bin)
		}
		if !found {
			t.Fatalf("no %s process below the client: %v", bin, children(n.Pid))
		}
		g.waitServers(t, n, len(g.Storage()), 60*time.Second)
		data := genBytes(600, 3<<20+11)
		c := g.mustPut(t, n, bytes.NewReader(data))
		if !strings.Contains(c, ":1:3:") {
			t.Errorf("cap %s does not carry k=1 n=3", c)
		}
		if got := len(g.allShares(storageIndex(t, c))); got != 3 {
			t.Errorf("%d shares stored, want 3", got)
		}
		var out bytes.Buffer
		if r := g.get(t, n, c, &out); r.Code != 0 || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("get through the replica codec: %d bytes: %v", out.Len(), r)
		}
		r := mustTarn(t, CLI{Timeout: time.Minute}, "plugin", "list", n.Dir)
		if !strings.Contains(r.Stdout, bin) || !strings.Contains(r.Stdout, sum) {
			t.Errorf("plugin list does not show the external plugin's path and pin:\n%s", r.Stdout)
		}
		t.Logf("\n%s", r.Stdout)
	})

	t.Run("pinned wrong: refused", func(t *testing.T) {
		wrong := strings.Repeat("0", 64)
		n := g.addClient(t, "bad-pin-client", GridOptions{Edit: codec(wrong), NoRun: true})
		check := func(what string, r Result) {
			t.Helper()
			if r.Code == 0 {
				t.Errorf("%s accepted a plugin with a wrong sha256: %v", what, r)
				return
			}
			msg := strings.ToLower(r.Stderr)
			if !strings.Contains(msg, "sha256") || !strings.Contains(msg, sum) && !strings.Contains(msg, wrong) {
				t.Errorf("%s: the error does not name the sha256 mismatch:\n%s", what, r.Stderr)
			}
			if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
				t.Errorf("%s panicked:\n%s", what, r.Stderr)
			}
			t.Logf("%s: %s", what, lastLine(r.Stderr))
		}
		check("tarn config check", tarn(t, CLI{}, "config", "check", n.Dir))
		check("tarn plugin list", tarn(t, CLI{Timeout: time.Minute}, "plugin", "list", n.Dir))
		r := tarn(t, CLI{Timeout: time.Minute}, "run", n.Dir)
		check("tarn run", r)
		if _, err := os.Stat(filepath.Join(n.Dir, "node.json")); err == nil {
			t.Errorf("a node refused at start left node.json")
		}
	})
}

// TestPluginOtherMajorVersion: a codec plugin speaking codec protocol v2
// (acceptance/testdata/codec-v2) is refused by `tarn plugin list` and at
// `tarn run` with a message naming both versions.
func TestPluginOtherMajorVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tarn-codec-v2")
	cmd := exec.Command("go", "build", "-o", bin, "./acceptance/testdata/codec-v2")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build codec-v2: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "node")
	mustTarn(t, CLI{}, "init", "--profile", "client", dir)
	prof := filepath.Join(dir, "tarn.toml")
	b, _ := os.ReadFile(prof)
	p := setTOML(string(b), "plugins.codec", "name", `""`)
	p = setTOML(p, "plugins.codec", "path", fmt.Sprintf("%q", bin))
	p = setTOML(p, "client", "api_listen", `"127.0.0.1:0"`)
	if err := os.WriteFile(prof, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	v1 := regexp.MustCompile(`\b(v|version )1\b`)
	v2 := regexp.MustCompile(`\b(v|version )2\b`)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"tarn plugin list", []string{"plugin", "list", dir}},
		{"tarn run", []string{"run", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tarn(t, CLI{Timeout: time.Minute}, tc.args...)
			if r.Code == 0 || r.Code == -1 {
				t.Fatalf("a codec plugin of protocol v2 was not refused: %v", r)
			}
			var line string
			for _, l := range strings.Split(r.Stderr, "\n") {
				if strings.Contains(strings.ToLower(l), "version") {
					line = l
				}
			}
			if !v1.MatchString(line) || !v2.MatchString(line) {
				t.Errorf("no error line names both protocol versions (1 and 2):\n%s", r.Stderr)
			}
			t.Logf("%s", line)
			if _, err := os.Stat(filepath.Join(dir, "node.json")); err == nil {
				t.Errorf("a node refused at start left node.json")
			}
		})
	}
}
