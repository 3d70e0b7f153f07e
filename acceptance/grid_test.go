//go:build acceptance

package acceptance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
)

// TestReservedSpace: a storage node that would fall below its reserved
// space takes no share; an upload places its shares elsewhere, and when too
// few servers are left it fails naming the full ones.
func TestReservedSpace(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, StorageEdit: func(i int, p string) string {
		if i == 0 {
			return setTOML(p, "storage", "reserved_space", `"1PB"`)
		}
		return p
	}})
	full := g.Storage()[0]
	data := genBytes(900, 2<<20+1)
	c := g.mustPut(t, g.Client, bytes.NewReader(data))
	si := storageIndex(t, c)
	if got := g.shares(full, si); len(got) > 0 {
		t.Errorf("the full node %s took %d shares", full.Name, len(got))
	}
	if got := len(g.allShares(si)); got < 4 {
		t.Errorf("%d shares stored, want at least H=4 on the 4 other nodes", got)
	}
	var out bytes.Buffer
	if r := g.get(t, g.Client, c, &out); r.Code != 0 || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get: %v", r)
	}

	g.kill(t, g.Storage()[1])
	_, r := g.put(t, g.Client, bytes.NewReader(genBytes(901, 2<<20)))
	if r.Code == 0 {
		t.Fatalf("put with 3 usable servers (one full, one down) and H=4 succeeded")
	}
	line := lastLine(r.Stderr)
	if !strings.Contains(line, "full") || !regexp.MustCompile(`\b3 usable\b|\busable\b.*\b3\b`).MatchString(line) {
		t.Errorf("put error does not name the usable and full servers:\n%s", r.Stderr)
	}
	t.Logf("error: %s", line)
}

// TestGridMembership: a client with another grid secret, pointed straight
// at a storage server, cannot store a share there.
func TestGridMembership(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true})
	target := g.Storage()[0]
	var info NodeInfo
	b, err := os.ReadFile(filepath.Join(target.Dir, "node.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		t.Fatal(err)
	}
	addr := info.StorageURL[strings.Index(info.StorageURL, "@")+1:]
	before := len(g.allShares(""))

	// tarn init without --grid-secret makes a new grid secret.
	dir := filepath.Join(g.Dir, "outsider")
	mustTarn(t, CLI{}, "init", "--profile", "client", "--name", "outsider", dir)
	prof := filepath.Join(dir, "tarn.toml")
	pb, _ := os.ReadFile(prof)
	p := setTOML(string(pb), "grid", "name", fmt.Sprintf("%q", g.Name))
	p = setTOML(p, "client", "api_listen", `"127.0.0.1:0"`)
	p = setTOML(p, "client", "server_timeout", `"5s"`)
	p = setTOML(p, "client.shares", "k", "1")
	p = setTOML(p, "client.shares", "h", "1")
	p = setTOML(p, "client.shares", "n", "1")
	p += fmt.Sprintf("\n[[grid.servers]]\nname = %q\naddress = %q\nkey_hash = %q\n", target.Name, addr, info.KeyHash)
	if err := os.WriteFile(prof, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: "outsider", Role: "client", Dir: dir}
	g.Nodes = append(g.Nodes, n)
	g.runNode(t, n)

	_, r := g.put(t, n, bytes.NewReader(genBytes(950, 100000)))
	if r.Code == 0 {
		t.Fatalf("a client of another grid stored a file on %s: %v", target.Name, r)
	}
	if after := len(g.allShares("")); after != before {
		t.Errorf("share files went from %d to %d after the outsider's upload", before, after)
	}
	t.Logf("outsider's put: %s", lastLine(r.Stderr))
}

// TestIntroducerRestart: after kill -9 and a restart of the introducer, the
// client and the storage nodes reconnect: a storage node that joins
// afterwards reaches the client's list, and uploads use it.
func TestIntroducerRestart(t *testing.T) {
	g := startGrid(t, GridOptions{})
	var intro *Node
	for _, n := range g.Nodes {
		if n.Role == "introducer" {
			intro = n
		}
	}
	if intro == nil {
		t.Fatal("no introducer node")
	}
	g.kill(t, intro)
	g.restart(t, intro)

	n := g.initNode(t, "storage", "storage-late", func(p string) string {
		p = setTOML(p, "grid", "name", fmt.Sprintf("%q", g.Name))
		p = setTOML(p, "storage", "listen", `["tcp:127.0.0.1:0"]`)
		p = setTOML(p, "node", "api_listen", `"127.0.0.1:0"`)
		return setTOML(p, "storage", "reserved_space", `"0"`)
	})
	g.runNode(t, n)
	start := time.Now()
	g.waitServers(t, g.Client, len(g.Storage()), 90*time.Second)
	figure(t, "client saw a storage node that joined after the introducer restart within %v", time.Since(start).Round(time.Millisecond))

	data := genBytes(960, 3<<20)
	c := g.mustPut(t, g.Client, bytes.NewReader(data))
	var out bytes.Buffer
	if r := g.get(t, g.Client, c, &out); r.Code != 0 || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get after the introducer restart: %v", r)
	}
}

// TestCLIErrors: bad input to the CLI gets one clear line and a non-zero
// exit, never a panic or a hang.
func TestCLIErrors(t *testing.T) {
	g := startGrid(t, GridOptions{})
	good := g.mustPut(t, g.Client, bytes.NewReader(genBytes(970, 100000)))
	parsed, err := cap.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	verify := parsed.(cap.CHK).Verify().String()
	// A well-formed cap of a file that was never stored.
	missing := parsed.(cap.CHK)
	missing.Key[0] ^= 1
	tmp := t.TempDir()
	notRunning := filepath.Join(tmp, "stopped")
	mustTarn(t, CLI{}, "init", "--profile", "client", notRunning)
	cl := g.Client.Dir
	cases := []struct {
		name string
		args []string
		want string // a word the line must hold
	}{
		{"get of a garbled cap", []string{"get", "--node", cl, "tarn:chk:not-a-cap"}, "cap"},
		{"get of a non-cap", []string{"get", "--node", cl, "hello"}, "cap"},
		{"get of a verify cap", []string{"get", "--node", cl, verify}, "verify cap"},
		{"get of a file never stored", []string{"get", "--node", cl, missing.String(), filepath.Join(tmp, "x")}, "shares"},
		{"get into a missing folder", []string{"get", "--node", cl, good, filepath.Join(tmp, "no", "such", "out")}, "no such"},
		{"put of a folder", []string{"put", "--node", cl, tmp}, "folder"},
		{"put of a missing file", []string{"put", "--node", cl, filepath.Join(tmp, "nope")}, "nope"},
		{"put through a node that is not running", []string{"put", "--node", notRunning, "-"}, "not running"},
		{"put through a storage node", []string{"put", "--node", g.Storage()[0].Dir, "-"}, "client"},
		{"status of a node that is not running", []string{"status", "--node", notRunning}, "not running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tarn(t, CLI{Stdin: strings.NewReader("data"), Timeout: time.Minute}, tc.args...)
			if r.Code == 0 || r.Code == -1 {
				t.Fatalf("want a non-zero exit: %v", r)
			}
			msg := strings.TrimSpace(r.Stderr)
			if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
				t.Fatalf("panicked:\n%s", msg)
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error is %d lines, want one:\n%s", strings.Count(msg, "\n")+1, msg)
			}
			if !strings.Contains(strings.ToLower(msg), tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
			t.Logf("%s", msg)
		})
	}
}

// TestStatus: `tarn status` names every storage server and plugin of the
// client, and `--json` agrees with the grid.
func TestStatus(t *testing.T) {
	g := startGrid(t, GridOptions{})
	r := mustTarn(t, CLI{}, "status", "--node", g.Client.Dir)
	for _, n := range g.Storage() {
		if !strings.Contains(r.Stdout, n.Name) {
			t.Errorf("status does not list %s:\n%s", n.Name, r.Stdout)
		}
	}
	for _, p := range nodePlugins(t, g.Client) {
		if !strings.Contains(r.Stdout, fmt.Sprint(p.Pid)) || !strings.Contains(r.Stdout, p.Name) {
			t.Errorf("status does not show plugin %s %s pid %d:\n%s", p.Kind, p.Name, p.Pid, r.Stdout)
		}
	}
	st, _ := g.status(t, g.Client)
	if st.Known != len(g.Storage()) || st.Conn != len(g.Storage()) {
		t.Errorf("status --json: %d known, %d connected; want %d", st.Known, st.Conn, len(g.Storage()))
	}
	t.Logf("\n%s", r.Stdout)
}
