package vdrive_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// gateStore holds the next folder change (Modify) at a gate while armed:
// before it is sent, or after it is made (before the write-behind learns
// it was), so a test can act while a change is in flight.
type gateStore struct {
	*slotCounter
	armed   atomic.Bool
	after   bool
	entered chan struct{}
	release chan struct{}
}

func (s *gateStore) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	if !s.armed.CompareAndSwap(true, false) {
		return s.slotCounter.Modify(ctx, c, fn)
	}
	if !s.after {
		s.entered <- struct{}{}
		<-s.release
		return s.slotCounter.Modify(ctx, c, fn)
	}
	err := s.slotCounter.Modify(ctx, c, fn)
	s.entered <- struct{}{}
	<-s.release
	return err
}

// TestWriteBehindSetMetadataInFlight: SetMetadata of a file whose link the
// folder change under way is making (rclone's SETSTAT right after its
// CLOSE) changes no folder itself: the metadata is journaled and made by
// the folder's next change; Stat shows it at once. And when the node is
// killed after the in-flight change made the link but before that next
// change, the replay makes the metadata although the entry already holds
// the link's cap: the mtime acknowledged is not lost.
func TestWriteBehindSetMetadataInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after bool // gate after the change is made (else before it is sent)
		kill  bool // kill after the in-flight change, replay on a new node
	}{
		{name: "before sent", after: false},
		{name: "after made", after: true},
		{name: "before sent, killed", after: false, kill: true},
		{name: "after made, killed", after: true, kill: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrid(t)
			root := newRootCap(t, g)
			dir := t.TempDir()
			gs := &gateStore{slotCounter: &slotCounter{Store: vdrive.GridStore(newClient(t, g))}, after: tc.after,
				entered: make(chan struct{}, 1), release: make(chan struct{})}
			b, err := vdrive.OpenBehind(gs, vdrive.BehindConfig{Dir: dir, Delay: never, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			d := frontDrive(t, b, root)
			ctx := ctxFor(t, time.Minute)
			if err := d.Mkdir(ctx, "/in"); err != nil {
				t.Fatal(err)
			}
			data := pseudo(7, 4096)
			putBytes(t, d, "/in/f", data)

			gs.armed.Store(true)
			m0 := gs.modifies.Load()
			flushed := make(chan error, 1)
			go func() { flushed <- b.Flush(ctx) }()
			select {
			case <-gs.entered:
			case <-ctx.Done():
				t.Fatal("the flush never changed the folder")
			}
			mtime := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
			set := make(chan error, 1)
			go func() {
				set <- d.SetMetadata(ctx, "/in/f", func(m *vdrive.Metadata) error {
					m.Mtime = mtime
					return nil
				})
			}()
			select {
			case err := <-set:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				close(gs.release)
				t.Fatal("SetMetadata waited for the folder change in flight")
			}
			if in, err := d.Stat(ctx, "/in/f"); err != nil || !in.ModTime().Equal(mtime) || in.Size() != 4096 {
				t.Fatalf("stat while in flight: %v %v", in, err)
			}
			close(gs.release)
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			if n := gs.modifies.Load() - m0; n != 1 {
				t.Fatalf("%d folder changes by the flush and SetMetadata, want 1 (the flush's)", n)
			}
			if n := b.Pending(); n != 1 {
				t.Fatalf("%d links pending after the in-flight change, want 1 (the metadata)", n)
			}
			if in, err := d.Stat(ctx, "/in/f"); err != nil || !in.ModTime().Equal(mtime) {
				t.Fatalf("stat after the in-flight change: %v %v", in, err)
			}
			if tc.kill {
				vdrive.Abandon(b)
				b2, _ := behindOn(t, g, dir, never)
				if n := b2.Pending(); n != 1 {
					t.Fatalf("replay: %d pending, want 1", n)
				}
				b = b2
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n := b.Pending(); n != 0 {
				t.Fatalf("%d links pending after flush", n)
			}
			far := open(t, g, root)
			in, err := far.Stat(ctx, "/in/f")
			if err != nil || !in.ModTime().Equal(mtime) || in.Size() != 4096 {
				t.Fatalf("another node sees %v %v, want mtime %s", in, err, mtime)
			}
			if got := get(t, far, "/in/f"); string(got) != string(data) {
				t.Fatal("other bytes")
			}
			if got := names(t, far, "/in"); fmt.Sprint(got) != "[f]" {
				t.Fatalf("folder holds %v", got)
			}
		})
	}
}
