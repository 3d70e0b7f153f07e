package grid_test

import (
	"testing"

	"github.com/tarnfs/tarn/host/testgrid"
)

// ServerHealth follows what the client meets: answers from live servers,
// a fault with its reason from a stopped one, and an answer again once it
// is back. The status page's "connected" column stands on it.
func TestServerHealth(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	if h := c.ServerHealth(); len(h) != 0 {
		t.Fatalf("health before any use: %v", h)
	}
	upload(t, c, random(100_000))
	for _, s := range g.Servers {
		h := c.ServerHealth()[s.NodeID]
		if h.LastAnswer.IsZero() || h.Failing() {
			t.Fatalf("server %s after an upload: %+v", s.NodeID, h)
		}
	}

	dead := g.Servers[2]
	dead.Stop()
	upload(t, c, random(100_000)) // 4 servers are enough (H=4)
	h := c.ServerHealth()[dead.NodeID]
	if !h.Failing() || h.LastError == "" {
		t.Fatalf("stopped server %s: %+v, want failing with a reason", dead.NodeID, h)
	}
	t.Logf("stopped server: %s", h.LastError)
	for _, s := range g.Servers {
		if s != dead && c.ServerHealth()[s.NodeID].Failing() {
			t.Errorf("live server %s failing: %+v", s.NodeID, c.ServerHealth()[s.NodeID])
		}
	}

	if err := dead.Restart(); err != nil {
		t.Fatal(err)
	}
	upload(t, c, random(100_000))
	if h := c.ServerHealth()[dead.NodeID]; h.Failing() {
		t.Fatalf("restarted server %s still failing: %+v", dead.NodeID, h)
	}
}
