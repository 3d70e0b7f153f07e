//go:build acceptance

package acceptance

// What an operator of a grid of separate node processes runs into: signals,
// restarts, a node started twice, ports taken, a killed node, a full disk,
// an introducer that is not there, a profile naming a missing file. Each
// must give a clear one-line answer and leave the rest of the grid working.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpsQAOperations(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true})
	storage := g.Storage()
	if len(storage) != 5 {
		t.Fatalf("want 5 storage nodes, have %d", len(storage))
	}
	oneLine := func(t *testing.T, r Result, want string) {
		t.Helper()
		if r.Code != 1 {
			t.Errorf("exit %d, want 1: %v", r.Code, r)
		}
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
		if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
			t.Errorf("panic:\n%s", r.Stderr)
		}
	}

	t.Run("SIGHUP leaves the node running", func(t *testing.T) {
		n := storage[0]
		g.signal(t, n, syscall.SIGHUP)
		time.Sleep(time.Second)
		if !alive(n.Pid) {
			t.Fatalf("%s died of SIGHUP", n.Name)
		}
		if _, err := os.Stat(filepath.Join(n.Dir, "node.json")); err != nil {
			t.Errorf("node.json after SIGHUP: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(g.logText(n), "SIGHUP ignored") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(g.logText(n), "SIGHUP ignored") {
			t.Errorf("%s did not log the ignored SIGHUP:\n%s", n.Name, tail(g.logText(n), 5))
		}
		mustTarn(t, CLI{}, "status", "--node", n.Dir)
	})

	t.Run("second tarn run on a running node is refused", func(t *testing.T) {
		r := tarn(t, CLI{Timeout: 30 * time.Second}, "run", storage[0].Dir)
		oneLine(t, r, "node is already running (pid "+fmt.Sprint(storage[0].Pid)+")")
	})

	t.Run("restart of one storage node while the client uploads", func(t *testing.T) {
		// h = 4 of 5 servers: uploads go on while one is down, as
		// docs/multi-host.md advises.
		n := storage[1]
		g.signal(t, n, syscall.SIGTERM)
		if left := waitGone([]int{n.Pid}, 15*time.Second); len(left) > 0 {
			t.Fatalf("%s still alive 15s after SIGTERM", n.Name)
		}
		if _, err := os.Stat(filepath.Join(n.Dir, "node.json")); err == nil {
			t.Errorf("a cleanly stopped node left node.json")
		}
		oneLine(t, tarn(t, CLI{}, "status", "--node", n.Dir), "node is not running (no node.json")
		for i := range 3 {
			capStr := g.mustPut(t, g.Client, bytes.NewReader(genBytes(uint64(100+i), 300_000)))
			if h, _, r := g.getHash(t, g.Client, capStr); h != genHash(uint64(100+i), 300_000) {
				t.Fatalf("read back of an upload made with %s down: %v", n.Name, r)
			}
		}
		g.restart(t, n)
		g.waitServers(t, g.Client, 5, 60*time.Second)
	})

	t.Run("status of a killed node says it was killed", func(t *testing.T) {
		n := storage[2]
		g.kill(t, n)
		oneLine(t, tarn(t, CLI{}, "status", "--node", n.Dir), "which is gone: it was killed")
		g.restart(t, n)
	})

	t.Run("a port another node holds", func(t *testing.T) {
		info := readNodeInfo(t, storage[0])
		addr := strings.TrimPrefix(info.APIURL, "http://")
		c := g.addClient(t, "port-taken", GridOptions{NoRun: true, Edit: func(p string) string {
			return setTOML(p, "node", "api_listen", fmt.Sprintf("%q", addr))
		}})
		r := tarn(t, CLI{Timeout: time.Minute}, "run", c.Dir)
		oneLine(t, r, addr)
		if !strings.Contains(r.Stderr, "address already in use") {
			t.Errorf("the error does not say the address is in use:\n%s", r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, "node.json")); err == nil {
			t.Errorf("a node refused at start left node.json")
		}
	})

	t.Run("tarn run names the profile line of a missing file", func(t *testing.T) {
		c := g.addClient(t, "no-secret", GridOptions{NoRun: true})
		if err := os.Remove(filepath.Join(c.Dir, "private", "grid.secret")); err != nil {
			t.Fatal(err)
		}
		r := tarn(t, CLI{Timeout: time.Minute}, "run", c.Dir)
		oneLine(t, r, "run: "+filepath.Join(c.Dir, "tarn.toml")+": 1 problem")
		if !regexp.MustCompile(`tarn\.toml:\d+: grid\.secret_file: .*no such file`).MatchString(r.Stderr) {
			t.Errorf("no FILE:LINE: grid.secret_file line:\n%s", r.Stderr)
		}
		if strings.Contains(r.Stderr, "plugin started") {
			t.Errorf("plugins started before the profile's files were checked:\n%s", r.Stderr)
		}
	})

	t.Run("client whose introducer is unreachable", func(t *testing.T) {
		// The grid's introducer URL with a port nothing listens on.
		bad := regexp.MustCompile(`:\d+$`).ReplaceAllString(g.Introducer, ":1")
		c := g.addClient(t, "lonely", GridOptions{NoRun: true, Edit: func(p string) string {
			return setTOML(p, "grid", "introducers", fmt.Sprintf("[%q]", bad))
		}})
		g.runNode(t, c)
		r := mustTarn(t, CLI{}, "status", "--node", c.Dir)
		if !strings.Contains(r.Stdout, "0 known") || !strings.Contains(r.Stdout, "hint: no storage server known yet: is the introducer reachable") {
			t.Errorf("status of a client with an unreachable introducer:\n%s", r.Stdout)
		}
		g.signal(t, c, syscall.SIGTERM)
		waitGone([]int{c.Pid}, 15*time.Second)
	})

	t.Run("storage node at its reserved space says FULL", func(t *testing.T) {
		n := storage[4]
		g.signal(t, n, syscall.SIGTERM)
		if left := waitGone([]int{n.Pid}, 15*time.Second); len(left) > 0 {
			t.Fatalf("%s still alive after SIGTERM", n.Name)
		}
		prof := filepath.Join(n.Dir, "tarn.toml")
		b, err := os.ReadFile(prof)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(prof, []byte(setTOML(string(b), "storage", "reserved_space", `"1 PiB"`)), 0o644); err != nil {
			t.Fatal(err)
		}
		g.restart(t, n)
		r := mustTarn(t, CLI{}, "status", "--node", n.Dir)
		if !strings.Contains(r.Stdout, "(1.0 PiB reserved)") || !strings.Contains(r.Stdout, "storage: FULL") {
			t.Errorf("status of a storage node below its reserved space:\n%s", r.Stdout)
		}
		var st struct {
			Storage struct {
				Reserved int64 `json:"reserved"`
			} `json:"storage"`
		}
		j := mustTarn(t, CLI{}, "status", "--json", "--node", n.Dir)
		if err := json.Unmarshal([]byte(j.Stdout), &st); err != nil || st.Storage.Reserved != 1<<50 {
			t.Errorf("status --json reserved = %d (%v), want 1 PiB", st.Storage.Reserved, err)
		}
	})
}
