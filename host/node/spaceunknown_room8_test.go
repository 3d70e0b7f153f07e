package node_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/node"
)

// TestUnknownFreeSpaceShown: a storage node whose free space cannot be
// read (its shares folder removed: statfs fails) announces it unknown
// within seconds, on its own (no upload, no periodic announcement); the
// client's status page says "unknown" for it (it said 4.0 EiB), and
// /metrics counts it in tarn_servers_space_unknown and leaves it out of
// tarn_servers_free_space_bytes (no 1.8e19), which sums the other two.
func TestUnknownFreeSpaceShown(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	// storage-1 again, reading its free space often (as the default
	// 20 s would, sooner).
	g.storage[0].Stop()
	lg := hclog.New(&hclog.LoggerOptions{Name: "storage-1", Level: hclog.Info, Output: io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, g.dirs["storage-1"], node.Options{Logger: lg, SpaceCheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	id := n.Info().NodeID
	seen := func() introducer.Server {
		for _, s := range g.client.Servers() {
			if s.NodeID == id {
				return s
			}
		}
		t.Fatalf("client does not know %s", id)
		return introducer.Server{}
	}
	shares := filepath.Join(g.dirs["storage-1"], "shares")
	if _, err := os.Stat(shares); err != nil {
		t.Fatalf("storage-1's shares folder: %v", err)
	}
	if err := os.RemoveAll(shares); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for s := seen(); s.FreeSpace != introducer.FreeSpaceUnknown; s = seen() {
		if time.Now().After(deadline) {
			t.Fatalf("client sees storage-1 with %d bytes free 15 s after its statfs began failing, want unknown", s.FreeSpace)
		}
		time.Sleep(20 * time.Millisecond)
	}

	in := g.client.Info()
	var st api.Status
	getJSON(t, in.APIURL+"/v1/status", &st)
	var others uint64
	for _, s := range st.Servers {
		switch got := s.FreeSpaceText(); {
		case s.NodeID == id && got != "unknown":
			t.Errorf("storage-1's free space shows as %q, want unknown", got)
		case s.NodeID != id:
			others += s.FreeSpace
			if got == "unknown" || strings.Contains(got, "EiB") {
				t.Errorf("server %s's free space (%d) shows as %q", s.Nickname, s.FreeSpace, got)
			}
		}
	}
	resp, err := http.Get(in.APIURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if c := strings.Count(string(page), "<td>unknown</td>"); c != 1 || strings.Contains(string(page), "EiB") {
		t.Errorf("status page: %d servers of unknown free space, want 1, and no EiB figure", c)
	}

	fams := scrape(t, in.APIURL)
	if got := sum(fams, "tarn_servers_space_unknown", nil); got != 1 {
		t.Errorf("tarn_servers_space_unknown = %v, want 1", got)
	}
	// The other two's figures (they move with the test disk: within 1 GiB).
	if got := sum(fams, "tarn_servers_free_space_bytes", nil); got <= 0 || got > float64(others)+(1<<30) || got < float64(others)-(1<<30) {
		t.Errorf("tarn_servers_free_space_bytes = %v, want about %d (the two servers of known free space)", got, others)
	}
}
