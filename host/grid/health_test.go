package grid_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/grid"
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

// A cap whose file no server holds, with every server answering, is "no
// shares" (a 404 to the API), not just "not enough shares" (a 503: try
// again later).
func TestNeverStoredIsNoShares(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	stored := chkOf(t, upload(t, c, random(100_000)))
	never := stored
	never.Key[0] ^= 1 // another key: another storage index
	_, err := c.Open(ctxFor(t, 30*time.Second), never)
	if !errors.Is(err, grid.ErrNoShares) || !errors.Is(err, grid.ErrNotEnoughShares) {
		t.Fatalf("open of a never-stored cap: %v, want ErrNoShares wrapped with ErrNotEnoughShares", err)
	}
	t.Log(err)

	// Two servers down: the file may be on them, so it is not "no shares".
	g.Servers[0].Stop()
	g.Servers[1].Stop()
	if _, err := c.Open(ctxFor(t, 30*time.Second), never); errors.Is(err, grid.ErrNoShares) || !errors.Is(err, grid.ErrNotEnoughShares) {
		t.Fatalf("open with servers down: %v, want ErrNotEnoughShares only", err)
	}
}

// A server that failed and came back is seen again by ProbeFailing, with
// no transfer needed.
func TestProbeFailing(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	upload(t, c, random(100_000))
	s := g.Servers[1]
	s.Freeze()
	upload(t, c, random(100_000)) // times out on the frozen server
	if h := c.ServerHealth()[s.NodeID]; !h.Failing() {
		t.Fatalf("frozen server %s not failing: %+v", s.NodeID, h)
	}
	c.ProbeFailing(ctxFor(t, 10*time.Second)) // still frozen: still failing
	if h := c.ServerHealth()[s.NodeID]; !h.Failing() {
		t.Fatalf("frozen server %s answered a probe: %+v", s.NodeID, h)
	}
	s.Thaw()
	c.ProbeFailing(ctxFor(t, 10*time.Second))
	if h := c.ServerHealth()[s.NodeID]; h.Failing() {
		t.Fatalf("thawed server %s still failing after a probe: %+v", s.NodeID, h)
	}
}
