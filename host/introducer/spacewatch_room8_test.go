package introducer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpaceMaterialUnknown: reads of the free space that start or stop
// failing (FreeSpaceUnknown) are material changes; failing on is not.
func TestSpaceMaterialUnknown(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name     string
		old, cur uint64
		want     bool
	}{
		{"reads start failing", 100 * gib, FreeSpaceUnknown, true},
		{"reads start failing near the top", FreeSpaceUnknown - 1, FreeSpaceUnknown, true},
		{"reads start failing when full", 0, FreeSpaceUnknown, true},
		{"reads work again", FreeSpaceUnknown, 100 * gib, true},
		{"reads work again near the top", FreeSpaceUnknown, FreeSpaceUnknown - 1, true},
		{"reads still fail", FreeSpaceUnknown, FreeSpaceUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := material(tc.old, tc.cur); got != tc.want {
				t.Fatalf("material(%d, %d) = %v, want %v", tc.old, tc.cur, got, tc.want)
			}
		})
	}
}

// TestFreeSpaceKnown: the one rule of what a server's figure tells.
func TestFreeSpaceKnown(t *testing.T) {
	live := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		s    Server
		want bool
	}{
		{"announced", Server{FreeSpace: 5 << 30, ExpiresAt: live}, true},
		{"announced full", Server{FreeSpace: 0, ExpiresAt: live}, true},
		{"announced unknown", Server{FreeSpace: FreeSpaceUnknown, ExpiresAt: live}, false},
		{"static, never announced", Server{Static: true}, false},
		{"static and announced", Server{Static: true, FreeSpace: 7, ExpiresAt: live}, true},
		{"cached", Server{Cached: true, FreeSpace: 7, ExpiresAt: time.Now().Add(-time.Hour)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			free, ok := tc.s.Free()
			if ok != tc.want || free != tc.s.FreeSpace {
				t.Fatalf("Free() = %d, %v; want %d, %v", free, ok, tc.s.FreeSpace, tc.want)
			}
			if got := FreeSpaceKnown(tc.s.FreeSpace, tc.s.Static, tc.s.ExpiresAt); got != tc.want {
				t.Fatalf("FreeSpaceKnown(%d, %v, %v) = %v, want %v", tc.s.FreeSpace, tc.s.Static, tc.s.ExpiresAt, got, tc.want)
			}
		})
	}
}

// TestSpaceWatchAnnouncesUnknownPromptly: when the free space can no
// longer be read, the watch asks for an announcement (it says unknown)
// within its period, not at the next interval (an hour here: before, no
// announcement followed); reads that go on failing ask for no more; once
// a read works, the figure is announced again.
func TestSpaceWatchAnnouncesUnknownPromptly(t *testing.T) {
	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	var failing atomic.Bool
	var free atomic.Uint64
	free.Store(10 << 30)
	var pub atomic.Pointer[Publisher]
	var told atomic.Int64
	w := NewSpaceWatch(SpaceWatchConfig{
		Free: func(context.Context) (uint64, error) {
			if failing.Load() {
				return 0, errors.New("statfs /srv/tarn: input/output error")
			}
			return free.Load(), nil
		},
		Kick: func() {
			if p := pub.Load(); p != nil {
				p.Kick()
			}
		},
		Every: 50 * time.Millisecond, MinGap: 100 * time.Millisecond,
	})
	s := startPublisher(t, intro, "g", func(c *PublisherConfig) {
		c.FreeSpace = w.FreeSpace(context.Background(), func(error) { told.Add(1) })
	})
	pub.Store(s.pub)
	run(t, w.Run)
	list, _ := startSubscriber(t, "g", nil, intro)
	node := watchedNode{storageNode: s}
	waitList(t, list, "10 GiB announced", freeIs(node, 10<<30))

	failing.Store(true)
	waitList(t, list, "unknown free space announced without a kick", freeIs(node, FreeSpaceUnknown))
	if n := told.Load(); n != 1 {
		t.Fatalf("the read error was told %d times, want once", n)
	}
	// Failing on is no change: no more announcements asked for (ten
	// checks).
	time.Sleep(100 * time.Millisecond) // a kick held back by MinGap may still land
	before := w.Kicks()
	time.Sleep(500 * time.Millisecond)
	if k := w.Kicks(); k != before {
		t.Fatalf("reads failing on asked for %d announcements", k-before)
	}

	failing.Store(false)
	waitList(t, list, "the figure announced again", freeIs(node, 10<<30))
}
