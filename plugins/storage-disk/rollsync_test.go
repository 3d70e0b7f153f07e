//go:build unix

package storagedisk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPackRollDuringFailingSync: a group sync of pack 1 fails while a
// Put rolls to pack 2. The kernel reports a writeback error to one sync
// only, so a second sync of pack 1 (the roll syncing the old pack itself,
// as it once did) would say yes and acknowledge a Put whose pages were
// dropped. No Put with a record in pack 1 may succeed.
func TestPackRollDuringFailingSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	d.pack.rollAt = 2 * (recHeaderLen + 100) // two shares a pack
	real := packSync
	var calls atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	packSync = func(f *os.File) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
			return syscall.EIO
		}
		return real(f) // the kernel has reported the error: this says yes
	}
	t.Cleanup(func() { packSync = real })
	put := func(i int) chan error {
		ch := make(chan error, 1)
		go func() { ch <- d.Put(ctx, packRef(i), packData(i, 100)) }()
		return ch
	}
	waitAppended := func(n uint64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); d.pack.appended() < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d records appended, want %d", d.pack.appended(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first := put(1) // pack 1; leads the sync that fails
	<-entered
	second := put(2) // pack 1; waits for the sync
	waitAppended(2)
	third := put(3) // rolls to pack 2
	waitAppended(3)
	// Give a waiter woken by a wrong "synced" the time to return.
	select {
	case err := <-second:
		second <- err
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for i, ch := range []chan error{first, second} {
		if err := <-ch; !errors.Is(err, syscall.EIO) {
			t.Errorf("put %d in the pack whose sync failed: %v, want EIO", 1+i, err)
		}
		if _, err := d.Stat(ctx, packRef(1+i)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("share %d of a failed put is visible: %v", 1+i, err)
		}
	}
	thirdErr := <-third // appended before the failure was known: fails too
	if loc, _, ok := d.pack.find(packRef(3)); ok && loc.pack != 2 {
		t.Errorf("share 3 in pack %d, want 2", loc.pack)
	}
	if err := d.Put(ctx, packRef(4), packData(4, 100)); err != nil {
		t.Fatalf("put after the failure: %v", err)
	}
	d.Close()
	d2 := newDisk(t, dir)
	mustRead(t, d2, packRef(4), packData(4, 100))
	if thirdErr == nil {
		mustRead(t, d2, packRef(3), packData(3, 100))
	}
}

// TestPackOneSyncAtATime: with packs rolling, emptying and being
// compacted under concurrent Puts and Deletes, no two syncs of the
// group commit run at once and none is of a closed pack (a pack still to
// sync is not closed or removed under it), and every Put succeeds.
func TestPackOneSyncAtATime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	d.pack.rollAt = 4 << 10
	real := packSync
	var inflight atomic.Int32
	var overlap, closed atomic.Bool
	packSync = func(f *os.File) error {
		if inflight.Add(1) > 1 {
			overlap.Store(true)
		}
		defer inflight.Add(-1)
		if f == nil || f.Fd() == ^uintptr(0) {
			closed.Store(true)
		}
		time.Sleep(200 * time.Microsecond) // widen the window
		return real(f)
	}
	t.Cleanup(func() { packSync = real })
	const writers, each = 4, 40
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				k := g*each + i
				if err := d.Put(ctx, packRef(k), packData(k, 500+k)); err != nil {
					errs[g] = err
					return
				}
				if i%2 == 1 {
					if err := d.Delete(ctx, packRef(k-1)); err != nil {
						errs[g] = fmt.Errorf("delete %d: %w", k-1, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if overlap.Load() {
		t.Error("two syncs of the group commit ran at once")
	}
	if closed.Load() {
		t.Error("the group commit synced a closed pack")
	}
	d.Close()
	d2 := newDisk(t, dir)
	for k := range writers * each {
		if k%2 == 1 {
			mustRead(t, d2, packRef(k), packData(k, 500+k))
		} else if _, err := d2.Stat(ctx, packRef(k)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("deleted share %d after a reopen: %v", k, err)
		}
	}
}
