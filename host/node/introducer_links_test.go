package node_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/node"
)

// TestClientRestartIntroducerDown: a client restarted while its
// introducer is down knows the servers from its cache
// (private/servers.cache, 0600) and uploads to them; its status says the
// introducer link is down, why and since when, and marks the servers
// cached; /metrics has the link's gauge at 0. A storage node's status
// shows its publisher link connected.
func TestClientRestartIntroducerDown(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	var sst api.Status
	getJSON(t, g.storage[0].Info().APIURL+"/v1/status", &sst)
	if len(sst.IntroducerLinks) != 1 || sst.IntroducerLinks[0].Role != "publisher" || !sst.IntroducerLinks[0].Connected {
		t.Fatalf("storage node's introducer links: %+v", sst.IntroducerLinks)
	}
	cache := filepath.Join(g.dirs["client"], "private", introducer.CacheFile)
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, _, err := introducer.LoadCache(cache, "test", time.Now())
		if err == nil && len(s) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client never cached 3 servers: %d, %v", len(s), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache %v mode %v, want 0600", err, fi.Mode())
	}
	g.client.Stop()
	g.intro.Stop()

	c := startNode(t, g.dirs["client"], io.Discard)
	if got := len(c.Servers()); got != 3 {
		t.Fatalf("restarted client knows %d servers, want 3 from its cache", got)
	}
	in := c.Info()
	tok, err := os.ReadFile(in.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	cl := &api.Client{BaseURL: in.APIURL, Token: strings.TrimSpace(string(tok))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := randomBytes(200 << 10)
	capStr, err := cl.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("upload through the cached servers: %v", err)
	}
	if capStr == "" {
		t.Fatal("no cap")
	}
	var st api.Status
	deadline = time.Now().Add(10 * time.Second)
	for {
		getJSON(t, in.APIURL+"/v1/status", &st)
		if len(st.IntroducerLinks) == 1 && st.IntroducerLinks[0].LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("introducer links: %+v", st.IntroducerLinks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l := st.IntroducerLinks[0]
	if l.Connected || l.Refused || l.Role != "subscriber" || l.Since.IsZero() || !strings.Contains(l.LastError, "introducer") {
		t.Errorf("link %+v", l)
	}
	if st.Known != 3 || st.Conn != 3 {
		t.Errorf("servers %d known, %d connected; want 3, 3", st.Known, st.Conn)
	}
	for _, s := range st.Servers {
		if !s.Cached {
			t.Errorf("server %s not marked cached", s.NodeID)
		}
	}
	fams := scrape(t, in.APIURL)
	if got := sum(fams, "tarn_introducer_connected", map[string]string{"role": "subscriber"}); got != 0 {
		t.Errorf("tarn_introducer_connected = %v, want 0", got)
	}
	if got := sum(fams, "tarn_servers_cached", nil); got != 3 {
		t.Errorf("tarn_servers_cached = %v, want 3", got)
	}
	if _, ok := fams["tarn_introducer_connected"]; !ok {
		t.Error("no tarn_introducer_connected family")
	}
}

// TestIntroducerDialErrorOneAddress: a client whose introducer does not
// listen shows why in its status, naming the transport address once
// (it read "dial tarn://…@tcp:127.0.0.1:1: tcp:127.0.0.1:1: dial
// tcp:127.0.0.1:1: dial tcp:127.0.0.1:1: dial tcp 127.0.0.1:1: ...",
// one mention per layer: plugin, host transport, nodelink, gRPC dial).
func TestIntroducerDialErrorOneAddress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "client")
	p, err := conf.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Node.Name = "client"
	p.Node.APIListen = "127.0.0.1:0"
	p.Client.Enabled = true
	p.Client.APIListen = "127.0.0.1:0"
	p.Grid.Introducers = []string{"tarn://" + strings.Repeat("a", 52) + "@tcp:127.0.0.1:1"}
	secret := randomBytes(32)
	if _, err := node.Prepare(p, secret); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	c := startNode(t, dir, io.Discard)
	var st api.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		getJSON(t, c.Info().APIURL+"/v1/status", &st)
		if len(st.IntroducerLinks) == 1 && st.IntroducerLinks[0].LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("introducer links %+v", st.IntroducerLinks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := st.IntroducerLinks[0].LastError
	if want := "introducer: dial tcp:127.0.0.1:1: connect: connection refused"; got != want {
		t.Errorf("last error %q, want %q", got, want)
	}
	if n := strings.Count(got, "127.0.0.1:1"); n != 1 {
		t.Errorf("%q names the address %d times", got, n)
	}
}

// TestStatusLinkLost: a storage server whose process goes away shows as
// not connected in the client's status at once ("link lost"), with no
// operation failing on it first and no traffic added: the client's link
// to it ended from the server's side. The others stay connected.
func TestStatusLinkLost(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	ctx := context.Background()
	data := randomBytes(100 << 10)
	if _, err := g.api.Put(ctx, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	gone := g.storage[0].Info().NodeID
	g.storage[0].Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st api.Status
		getJSON(t, g.client.Info().APIURL+"/v1/status", &st)
		var lost *api.ServerStatus
		conn := 0
		for i, s := range st.Servers {
			if s.NodeID == gone && !s.Connected {
				lost = &st.Servers[i]
			}
			if s.Connected {
				conn++
			}
		}
		if lost != nil {
			if !strings.HasPrefix(lost.LastError, "link lost: ") || lost.LastFailure.IsZero() || conn != 2 || st.Conn != 2 {
				t.Fatalf("lost server %+v, %d connected", *lost, conn)
			}
			if st.GridStats != nil {
				if m, ok := st.GridStats.(map[string]any); ok {
					if f, _ := m["uploads_failed"].(float64); f != 0 {
						t.Fatalf("an upload failed: %v", m)
					}
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stopped server still connected: %+v", st.Servers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
