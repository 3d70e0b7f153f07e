//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPackTornRecordHidesForgedTombstone: a share's bytes come from a
// client and may hold a sound tombstone naming another share. When that
// share's append is torn (its header sound, its data cut short by the end
// of the pack), the scan at open cuts the pack at the torn record's
// header: it does not look for records inside the torn data, so the
// forged tombstone never deletes the other, acknowledged share.
func TestPackTornRecordHidesForgedTombstone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	victim, attacker := packRef(1), packRef(2)
	if err := d.Put(ctx, victim, packData(1, 1000)); err != nil {
		t.Fatal(err)
	}
	forged := make([]byte, recHeaderLen)
	codecV1.encodeHeader(forged, recKindDelete, victim, nil)
	data := append(append(make([]byte, 500), forged...), make([]byte, 500)...)
	if err := d.Put(ctx, attacker, data); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// The attacker's append as a crash may leave it: its header and the
	// first 600 bytes of its data (the forged tombstone among them).
	pack := packFiles(t, dir)[0]
	sound := int64(packV3Start + recHeaderLen + 1000)
	if err := os.Truncate(pack, sound+recHeaderLen+600); err != nil {
		t.Fatal(err)
	}
	logged := catchPackLogs(t)
	d2 := newDisk(t, dir)
	mustRead(t, d2, victim, packData(1, 1000))
	if _, err := d2.Stat(ctx, attacker); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the torn share: %v, want ErrNotFound", err)
	}
	if st, err := os.Stat(pack); err != nil || st.Size() != sound {
		t.Errorf("pack after the cut: %v, %v; want %d bytes", st.Size(), err, sound)
	}
	if l := logged(); len(l) != 1 || !strings.Contains(l[0], "torn tail") {
		t.Errorf("logged %q, want one torn tail line", l)
	}
}

// TestPackSyncFailsLaterAppends: a Put whose record is appended to the
// pack while a group sync of it is running, and that sync then fails,
// fails too: the failed writeback may have dropped its pages (they may
// share one with the records the sync covered), and the kernel reports
// the error to one sync only, so the next sync of the pack saying yes
// proves nothing.
func TestPackSyncFailsLaterAppends(t *testing.T) {
	ctx := context.Background()
	d := newDisk(t, t.TempDir())
	if err := d.Put(ctx, packRef(0), packData(0, 100)); err != nil {
		t.Fatal(err)
	}
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
	first := make(chan error, 1)
	go func() { first <- d.Put(ctx, packRef(1), packData(1, 100)) }()
	<-entered
	before := d.pack.appended()
	second := make(chan error, 1)
	go func() { second <- d.Put(ctx, packRef(2), packData(2, 100)) }()
	for d.pack.appended() == before { // the second record is in the pack
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; !errors.Is(err, syscall.EIO) {
		t.Errorf("put covered by the failed sync: %v, want EIO", err)
	}
	if err := <-second; !errors.Is(err, syscall.EIO) {
		t.Errorf("put appended during the failed sync: %v, want EIO", err)
	}
	for _, i := range []int{1, 2} {
		if _, err := d.Stat(ctx, packRef(i)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("share %d of a failed put is visible: %v", i, err)
		}
	}
	if err := d.Put(ctx, packRef(3), packData(3, 100)); err != nil {
		t.Fatalf("put after the failure: %v", err)
	}
	mustRead(t, d, packRef(3), packData(3, 100))
}

// TestReadDuringCompaction: a read that found a packed share just before
// a compaction moved it and closed its pack reads it from its new place
// (ReadAt and Open), not failing with "file already closed".
func TestReadDuringCompaction(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		read func(d *Disk, ref storage.Ref) ([]byte, error)
	}{
		{"ReadAt", func(d *Disk, ref storage.Ref) ([]byte, error) {
			b := make([]byte, 10000)
			n, err := d.ReadAt(ctx, ref, b, 0)
			if err == io.EOF {
				err = nil
			}
			return b[:n], err
		}},
		{"Open", func(d *Disk, ref storage.Ref) ([]byte, error) {
			f, _, err := d.Open(ctx, ref)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return io.ReadAll(f)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, dir)
			threeOfEightLive(t, ctx, d)
			first := packFiles(t, dir)[0]
			var once sync.Once
			packFound = func(ref storage.Ref) {
				once.Do(func() {
					for _, i := range []int{5, 6} { // the pack is compacted
						if err := d.Delete(ctx, packRef(i)); err != nil {
							t.Error(err)
						}
					}
				})
			}
			t.Cleanup(func() { packFound = func(storage.Ref) {} })
			got, err := tc.read(d, packRef(7))
			if err != nil || !bytes.Equal(got, packData(7, 10000)) {
				t.Fatalf("read of a share moved meanwhile: %d bytes, %v", len(got), err)
			}
			if slices.Contains(packFiles(t, dir), first) {
				t.Fatalf("pack %s was not compacted during the read", first)
			}
		})
	}
}

// TestCompactKeepsTombstoneOfFailingPut: a compaction of a pack holding
// the tombstone of a share whose record lies in an older pack, while a
// Put of that share again is claimed but not yet appended, waits for the
// Put; the Put fails; the tombstone is carried forward, so the deleted
// share does not come back at the next open.
func TestCompactKeepsTombstoneOfFailingPut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	roll := func() {
		t.Helper()
		d.pack.amu.Lock()
		defer d.pack.amu.Unlock()
		if err := d.pack.roll(); err != nil {
			t.Fatal(err)
		}
	}
	s, a := packRef(1), packRef(2)
	for _, r := range []storage.Ref{s, a} { // pack 1
		if err := d.Put(ctx, r, packData(int(r.Index[2]), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	roll()
	if err := d.Delete(ctx, s); err != nil { // its tombstone: pack 2
		t.Fatal(err)
	}
	for i := 10; i < 14; i++ {
		if err := d.Put(ctx, packRef(i), packData(i, 5000)); err != nil {
			t.Fatal(err)
		}
	}
	roll() // pack 3 is the current one
	entered, release := make(chan struct{}), make(chan struct{})
	packClaimed = func(ref storage.Ref) {
		if ref == s {
			close(entered)
			<-release
		}
	}
	t.Cleanup(func() { packClaimed = func(storage.Ref) {} })
	real := packSync
	var failOnce atomic.Bool
	packSync = func(f *os.File) error {
		if failOnce.CompareAndSwap(true, false) {
			return syscall.EIO
		}
		return real(f)
	}
	t.Cleanup(func() { packSync = real })
	putErr := make(chan error, 1)
	go func() { putErr <- d.Put(ctx, s, packData(1, 1000)) }()
	<-entered
	deleted := make(chan error, 1)
	go func() { // pack 2 empties and is compacted
		var err error
		for i := 10; i < 14; i++ {
			err = errors.Join(err, d.Delete(ctx, packRef(i)))
		}
		deleted <- err
	}()
	select {
	case err := <-deleted:
		deleted <- err
	case <-time.After(300 * time.Millisecond): // waits for the Put
	}
	failOnce.Store(true)
	close(release)
	if err := <-putErr; !errors.Is(err, syscall.EIO) {
		t.Fatalf("put of the share again: %v, want EIO", err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if got := packFiles(t, dir); slices.Contains(got, filepath.Join(dir, "packs", packName(2))) {
		t.Fatalf("packs %v: pack 2 was not compacted", got)
	}
	d.Close()
	d2 := newDisk(t, dir)
	if _, err := d2.Stat(ctx, s); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted share after a reopen: %v, want ErrNotFound", err)
	}
	mustRead(t, d2, a, packData(2, 1000))
}
