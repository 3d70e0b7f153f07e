package checker_test

import (
	"context"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/checker"
)

// TestCheckAsksServerThawedWhileGridRemembers: a server the grid client
// remembers as hung (a directory read stopped waiting for it) that then
// thaws is asked again by the checker as soon as the checker's probe sees
// it answer, not only once the grid client's memory of it runs out a
// server timeout later: reports stop naming it unreachable.
func TestCheckAsksServerThawedWhileGridRemembers(t *testing.T) {
	e := newEnvTimeout(t, 5, nil, hungTimeout)
	ctx := context.Background()
	c := e.upload(t, random(8<<10))
	w, err := e.gc.CreateMutable(ctx, []byte("folder"))
	if err != nil {
		t.Fatal(err)
	}
	frozen := e.g.Servers[1]
	frozen.Freeze()
	t.Cleanup(frozen.Thaw)
	if _, _, err := e.gc.ReadMutable(ctx, w); err != nil {
		t.Fatal(err)
	}
	if !e.gc.Hung(frozen.NodeID) {
		t.Fatalf("the grid client does not remember %s as hung after a read that did not wait for it", frozen.NodeID)
	}
	frozen.Thaw()
	thawed := time.Now()
	r, err := e.ck.Check(ctx, c, checker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first check after the thaw: unreachable %v (the grid client's memory; its probe starts)", r.Unreachable)
	// Well before the grid client's memory runs out (hungTimeout after
	// the read stopped waiting).
	deadline := thawed.Add(hungTimeout / 2)
	for {
		r, err := e.ck.Check(ctx, c, checker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Unreachable) == 0 && r.Outcome == checker.Healthy {
			if !e.gc.Hung(frozen.NodeID) {
				t.Logf("the grid client forgot the server first (%s after the thaw): the test proves nothing this run", time.Since(thawed))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thawed server still not asked %s after the thaw (grid client remembers it: %v): unreachable %v",
				time.Since(thawed).Round(time.Millisecond), e.gc.Hung(frozen.NodeID), r.Unreachable)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
