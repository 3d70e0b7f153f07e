//go:build acceptance

package acceptance

// What an operator sees of a node's links, on real tarn processes: a
// storage node with another grid's secret is told it is refused (not that
// the introducer is unreachable), a storage node killed with -9 shows as
// not connected before anything fails on it, and a client restarted while
// its introducer is down still knows the servers from its cache and
// stores files on them.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// linkStatus is the part of /v1/status these tests read.
type linkStatus struct {
	Known   int `json:"servers_known"`
	Conn    int `json:"servers_connected"`
	Servers []struct {
		NodeID    string `json:"node_id"`
		Nickname  string `json:"nickname"`
		Connected bool   `json:"connected"`
		Cached    bool   `json:"cached"`
		LastError string `json:"last_error"`
	} `json:"servers"`
	IntroducerLinks []struct {
		URL       string `json:"url"`
		Role      string `json:"role"`
		Connected bool   `json:"connected"`
		LastError string `json:"last_error"`
		Refused   bool   `json:"refused"`
	} `json:"introducer_links"`
}

func linkStatusOf(t *testing.T, n *Node) (linkStatus, Result) {
	t.Helper()
	r := tarn(t, CLI{Timeout: 40 * time.Second}, "status", "--json", "--node", n.Dir)
	var st linkStatus
	if r.Code == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("tarn status --json: %v\n%s", err, r.Stdout)
		}
	}
	return st, r
}

// waitFor polls cond every 100 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last: %s", what, d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestOpsFixIntroducerLinks(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true})
	defer func() {
		if t.Failed() {
			g.dumpLogs(t)
		}
	}()
	g.waitServers(t, g.Client, 5, 60*time.Second)

	t.Run("wrong grid secret", func(t *testing.T) {
		n := g.initNode(t, "storage", "storage-stranger", func(p string) string {
			p = setTOML(p, "node", "api_listen", `"127.0.0.1:0"`)
			p = setTOML(p, "storage", "listen", `["tcp:127.0.0.1:0"]`)
			return setTOML(p, "storage", "reserved_space", `"0"`)
		})
		secret := make([]byte, 32)
		rand.Read(secret)
		if err := os.WriteFile(filepath.Join(n.Dir, "private", "grid.secret"), secret, 0o600); err != nil {
			t.Fatal(err)
		}
		g.runNode(t, n)
		const want = "introducer refused this node: not a member of this grid (grid secret differs)"
		waitFor(t, 20*time.Second, "the refusal in the log", func() (bool, string) {
			text := g.logText(n)
			return strings.Contains(text, "[ERROR] storage-stranger.publisher: "+want), tail(text, 800)
		})
		if text := g.logText(n); strings.Contains(text, "unreachable") {
			t.Errorf("log calls the introducer unreachable:\n%s", tail(text, 2000))
		}
		r := tarn(t, CLI{}, "status", "--node", n.Dir)
		if r.Code != 0 || !strings.Contains(r.Stdout, "(publisher): REFUSED since ") || !strings.Contains(r.Stdout, want) {
			t.Errorf("status text:\n%v", r)
		}
		g.kill(t, n)
	})

	t.Run("kill -9 of a storage node", func(t *testing.T) {
		g.mustPut(t, g.Client, bytes.NewReader(genBytes(1, 200<<10)))
		victim := g.Storage()[0]
		g.kill(t, victim)
		start := time.Now()
		waitFor(t, 10*time.Second, "the killed server not connected", func() (bool, string) {
			st, r := linkStatusOf(t, g.Client)
			for _, s := range st.Servers {
				if s.Nickname == victim.Name && !s.Connected && strings.HasPrefix(s.LastError, "link lost: ") {
					return st.Conn == 4, r.Stdout
				}
			}
			return false, r.Stdout
		})
		figure(t, "kill -9 of a storage node shown as not connected after %v (no operation)", time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("client restart with the introducer down", func(t *testing.T) {
		cache := filepath.Join(g.Client.Dir, "private", "servers.cache")
		waitFor(t, 10*time.Second, "the server cache", func() (bool, string) {
			fi, err := os.Stat(cache)
			if err != nil {
				return false, err.Error()
			}
			return fi.Mode().Perm() == 0o600 && fi.Size() > 0, fi.Mode().String()
		})
		var intro *Node
		for _, n := range g.Nodes {
			if n.Role == "introducer" {
				intro = n
			}
		}
		g.kill(t, intro)
		g.kill(t, g.Client)
		g.restart(t, g.Client)
		st, r := linkStatusOf(t, g.Client)
		cached := 0
		for _, s := range st.Servers {
			if s.Cached {
				cached++
			}
		}
		// Five were cached; the one killed above is cached too (its
		// announcement is still in force), and is dialled in vain.
		if st.Known != 5 || cached != 5 {
			t.Fatalf("restarted client: %d known, %d cached; want 5, 5\n%v", st.Known, cached, r)
		}
		waitFor(t, 10*time.Second, "the introducer link's error", func() (bool, string) {
			st, r := linkStatusOf(t, g.Client)
			ok := len(st.IntroducerLinks) == 1 && !st.IntroducerLinks[0].Connected && st.IntroducerLinks[0].LastError != ""
			return ok, r.Stdout
		})
		text := tarn(t, CLI{}, "status", "--node", g.Client.Dir)
		if !strings.Contains(text.Stdout, "(5 from the cached list: no introducer answered since start)") ||
			!strings.Contains(text.Stdout, "(subscriber): not connected since ") {
			t.Errorf("status text:\n%v", text)
		}
		// The four live servers take a file (k=3, h=4).
		c := g.mustPut(t, g.Client, bytes.NewReader(genBytes(2, 300<<10)))
		if h, n, r := g.getHash(t, g.Client, c); r.Code != 0 || n != 300<<10 || h != genHash(2, 300<<10) {
			t.Fatalf("get back: %v", r)
		}
	})
}
