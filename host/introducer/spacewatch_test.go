package introducer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestSpaceMaterial(t *testing.T) {
	const mib, gib = 1 << 20, 1 << 30
	for _, tc := range []struct {
		name     string
		old, cur uint64
		want     bool
	}{
		{"became full", 5 * mib, 0, true},
		{"no longer full", 0, 1, true},
		{"still full", 0, 0, false},
		{"unchanged", 100 * gib, 100 * gib, false},
		{"small drop of a big disk", 100 * gib, 99 * gib, false},
		{"drop of 10 percent", 100 * gib, 90 * gib, true},
		{"rise of 10 percent", 10 * gib, 11 * gib, true},
		{"4 GiB of a huge disk", 100 << 40, 100<<40 - 4*gib, true},
		{"half of a nearly full disk, under the least step", 100 * mib, 50 * mib, false},
		{"half of a small disk", 200 * mib, 100 * mib, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := material(tc.old, tc.cur); got != tc.want {
				t.Fatalf("material(%d, %d) = %v, want %v", tc.old, tc.cur, got, tc.want)
			}
		})
	}
}

// watchedNode is a storage node announcing through a SpaceWatch; free is
// its free space (its publisher runs before startPublisher returns, so
// the figure cannot live in the storageNode).
type watchedNode struct {
	*storageNode
	free *atomic.Uint64
}

func watchedPublisher(t *testing.T, intro *introducerNode, cfg SpaceWatchConfig) (watchedNode, *SpaceWatch) {
	free := new(atomic.Uint64)
	free.Store(1000)
	var pub atomic.Pointer[Publisher]
	cfg.Free = func(context.Context) (uint64, error) { return free.Load(), nil }
	cfg.Kick = func() {
		if p := pub.Load(); p != nil {
			p.Kick()
		}
	}
	w := NewSpaceWatch(cfg)
	s := startPublisher(t, intro, "g", func(c *PublisherConfig) { c.FreeSpace = w.FreeSpace(context.Background(), nil) })
	pub.Store(s.pub)
	run(t, w.Run)
	return watchedNode{s, free}, w
}

func freeIs(s watchedNode, want uint64) func([]Server) bool {
	return func(l []Server) bool {
		x, ok := find(l, s.id.NodeID())
		return ok && x.FreeSpace == want
	}
}

// A node that fills past its reserve is seen full by clients within the
// watch's period, not at the next announcement (an hour here), and seen
// again when space is freed; a small change announces nothing.
func TestSpaceWatchFull(t *testing.T) {
	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	s, w := watchedPublisher(t, intro, SpaceWatchConfig{Every: 50 * time.Millisecond, MinGap: 100 * time.Millisecond})
	s.free.Store(10 << 30)
	list, _ := startSubscriber(t, "g", nil, intro)
	// The first announcement may have read the old figure (1000 bytes):
	// the watch corrects it.
	waitList(t, list, "10 GiB announced", freeIs(s, 10<<30))

	start := time.Now()
	s.free.Store(0)
	waitList(t, list, "node seen full", freeIs(s, 0))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("full seen after %s", d)
	}
	s.free.Store(3 << 30)
	waitList(t, list, "node seen with space again", freeIs(s, 3<<30))

	// (The publisher's count of answered publishes may still grow by the
	// announcement just seen: its answer can come after the list has it.)
	before := w.Kicks()
	s.free.Store(3<<30 - 1<<20)
	time.Sleep(500 * time.Millisecond) // ten checks
	if k := w.Kicks(); k != before {
		t.Fatalf("a 1 MiB change asked for %d announcements", k-before)
	}
}

// A refused put announces the free space at once, even when the periodic
// check is far off; the watch asks for at most one announcement per
// MinGap however often the space swings.
func TestSpaceWatchRefusedAndRateLimit(t *testing.T) {
	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	s, w := watchedPublisher(t, intro, SpaceWatchConfig{Every: time.Hour, MinGap: 300 * time.Millisecond})
	list, _ := startSubscriber(t, "g", nil, intro)
	waitList(t, list, "first announcement", freeIs(s, 1000))

	s.free.Store(400) // not material: only the refusal announces it
	w.Refused()
	waitList(t, list, "announced after a refusal", freeIs(s, 400))

	// Swing between full and not full every 10 ms for 1.5 s, each swing
	// a refusal: at most one announcement per 300 ms. (Counted as the
	// watch asks for them: the publisher counts answers, which may lag.)
	before := w.Kicks()
	start := time.Now()
	for i := 0; time.Since(start) < 1500*time.Millisecond; i++ {
		s.free.Store(uint64(i%2) * (1 << 30))
		w.Refused()
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	time.Sleep(400 * time.Millisecond) // a held-back announcement goes out
	n := w.Kicks() - before
	limit := uint64(elapsed/(300*time.Millisecond)) + 2
	if n < 2 || n > limit {
		t.Fatalf("%d announcements in %s of swings, want 2 to %d", n, elapsed.Round(time.Millisecond), limit)
	}
	// The last figure is announced in the end.
	waitList(t, list, "last figure", freeIs(s, s.free.Load()))
}
