package introducer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/placement"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
)

// TestSpaceWatchFreeSpaceFails: a storage node whose free space cannot be
// read (the disk backend's statfs fails: its folder is gone) announces
// FreeSpaceUnknown, which clients take as room, not 0 (FULL); the error
// is told once however many announcements follow, again when it changes
// or comes back after a read that worked; once reads work again, the
// watch announces the figure within its period.
func TestSpaceWatchFreeSpaceFails(t *testing.T) {
	if (placement.Room{Free: FreeSpaceUnknown, Known: true}).TooSmall(1 << 40) {
		t.Fatal("clients take FreeSpaceUnknown as too small for a share")
	}
	dir := filepath.Join(t.TempDir(), "storage")
	disk, err := storagedisk.New(dir)
	if err != nil {
		t.Skipf("disk backend: %v", err)
	}
	t.Cleanup(func() { disk.Close() })
	var broken atomic.Bool // another failure than statfs's
	free := func(ctx context.Context) (uint64, error) {
		if broken.Load() {
			return 0, errors.New("space: backend plugin gone")
		}
		sp, err := disk.Space(ctx)
		return uint64(sp.Free), err
	}
	var mu sync.Mutex
	var told []error
	onErr := func(err error) {
		mu.Lock()
		told = append(told, err)
		mu.Unlock()
	}
	toldNow := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), told...)
	}

	intro := startIntroducer(t, ServiceConfig{Grid: "g"})
	var pub atomic.Pointer[Publisher]
	w := NewSpaceWatch(SpaceWatchConfig{Free: free, Every: 50 * time.Millisecond, MinGap: 100 * time.Millisecond,
		Kick: func() {
			if p := pub.Load(); p != nil {
				p.Kick()
			}
		}})
	s := startPublisher(t, intro, "g", func(c *PublisherConfig) { c.FreeSpace = w.FreeSpace(context.Background(), onErr) })
	pub.Store(s.pub)
	run(t, w.Run)
	list, _ := startSubscriber(t, "g", nil, intro)
	figure := func(l []Server) bool {
		x, ok := find(l, s.id.NodeID())
		return ok && x.FreeSpace > 0 && x.FreeSpace != FreeSpaceUnknown
	}
	unknown := func(l []Server) bool {
		x, ok := find(l, s.id.NodeID())
		return ok && x.FreeSpace == FreeSpaceUnknown
	}
	// announce makes the publisher announce n more times (each reads the
	// free space).
	announce := func(n int) {
		t.Helper()
		for range n {
			before := s.pub.Published()
			s.pub.Kick()
			deadline := time.Now().Add(10 * time.Second)
			for s.pub.Published() == before {
				if time.Now().After(deadline) {
					t.Fatal("no announcement 10 s after a kick")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	waitList(t, list, "the disk's free space announced", figure)

	// The folder goes: statfs fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.Space(context.Background()); err == nil {
		t.Fatal("statfs of a removed folder worked: the test proves nothing")
	}
	s.pub.Kick()
	waitList(t, list, "unknown free space announced", unknown)
	announce(3)
	if got := toldNow(); len(got) != 1 || !strings.Contains(got[0].Error(), "statfs") {
		t.Fatalf("errors told over 4 or more announcements: %v, want the statfs error once", got)
	}
	// Another error is a change: told.
	broken.Store(true)
	announce(2)
	if got := toldNow(); len(got) != 2 {
		t.Fatalf("errors told: %v, want 2 (the error changed)", got)
	}

	// The folder is back: the watch announces the figure on its own (a
	// material change from unknown), no announcement asked here.
	broken.Store(false)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitList(t, list, "free space announced again", figure)
	announce(1)
	// Failing again after a read that worked is a change: told.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	announce(2)
	waitList(t, list, "unknown free space announced again", unknown)
	if got := toldNow(); len(got) != 3 {
		t.Fatalf("errors told: %v, want 3 (reads failed again after one worked)", got)
	}
}
