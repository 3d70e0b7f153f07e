package grid_test

import (
	"sync"
	"testing"
	"time"
)

// TestMutableSlowWritersWaitedForHappiness: two of 5 servers stall past
// the grace during a modify's share writes (a loaded machine, not a hung
// server). Without them only 3 servers would hold the version, fewer than
// H=4, so the round waits for their answers instead of giving them up and
// failing with ErrNotHappy: the modify succeeds once they answer, and
// both hold the new version.
func TestMutableSlowWritersWaitedForHappiness(t *testing.T) {
	g := mutGrid(t, 5)
	c, _ := frozenClient(t, g)
	w := create(t, c, []byte("v1\n"))
	si := w.StorageIndex()
	slow := []int{3, 4}                   // not the lead (share 0), written in the round
	const stall = 1800 * time.Millisecond // past the grace (1 s here)
	var once sync.Once
	start := time.Now()
	_, err := c.Modify(mctx(t), w, func(old []byte) ([]byte, error) {
		once.Do(func() {
			for _, n := range slow {
				s := holder(t, g, si, n)
				s.Freeze()
				time.AfterFunc(stall, s.Thaw)
				t.Cleanup(s.Thaw)
			}
		})
		return addLine("v2")(old)
	})
	if err != nil {
		t.Fatalf("modify with 2 of 5 servers slow past the grace (H=4): %v", err)
	}
	if d := time.Since(start); d < stall {
		t.Fatalf("modify returned after %v, before the slow servers answered (%v)", d, stall)
	}
	for _, n := range slow {
		if seq := slotSeq(t, holder(t, g, si, n), si, n); seq != 2 {
			t.Fatalf("share %d is at version %d on its slow server, want 2", n, seq)
		}
	}
}
