package vdrive_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/vdrive"
)

// pathReadFailStore fails reads of one folder's slot (a parent on a
// link's path) while armed: the path check cannot prove the link's
// folder there, for now, while the folder itself reads and writes.
type pathReadFailStore struct {
	slotCounter
	armed atomic.Bool
	slot  atomic.Value // cap.MutableRead
}

var errPathRead = errors.New("test: a parent folder's servers do not answer for now")

func (s *pathReadFailStore) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	if k, _ := s.slot.Load().(cap.MutableRead); s.armed.Load() && c == k {
		s.reads.Add(1)
		return nil, errPathRead
	}
	return s.slotCounter.ReadMutable(ctx, c)
}

// TestReview5ThrottledRewriteDoesNotSpin: while a folder's pending link
// waits because its path cannot be checked for now (a parent's read
// fails; the folder's own change succeeds), a new file of the same name
// (made at once: the folder is under backpressure) fails or waits for
// the retry's backoff; it does not redo the folder's change in a loop,
// reading the grid hundreds of times a second, until its deadline.
func TestReview5ThrottledRewriteDoesNotSpin(t *testing.T) {
	g := newGrid(t)
	root := newRootCap(t, g)
	st := &pathReadFailStore{slotCounter: slotCounter{Store: vdrive.GridStore(newClient(t, g))}}
	b, err := vdrive.OpenBehind(st, vdrive.BehindConfig{Dir: t.TempDir(), Delay: never, PathCacheTTL: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := frontDrive(t, b, root)
	ctx := ctxFor(t, time.Minute)
	if err := d.MkdirAll(ctx, "/up/in"); err != nil {
		t.Fatal(err)
	}
	up, err := d.Stat(ctx, "/up")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cap.Parse(up.ReadCap())
	if err != nil {
		t.Fatal(err)
	}
	st.slot.Store(c.(cap.DirRead).Slot)
	putBytes(t, d, "/up/in/a", []byte("one"))
	st.armed.Store(true)
	_ = b.Flush(ctx) // the path check fails for now: the link waits, the folder backs off
	if b.Pending() != 1 {
		t.Fatalf("%d pending, want the link waiting", b.Pending())
	}
	r0 := st.reads.Load()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	_, perr := d.PutLinked(pctx, "/up/in/a", bytes.NewReader([]byte("two")), 3, nil)
	reads := st.reads.Load() - r0
	t.Logf("put of the same name: %v after %v, %d reads", perr, time.Since(start).Round(time.Millisecond), reads)
	if reads > 50 {
		t.Fatalf("the put of a name pending in a throttled folder read %d folders in %v: a loop of folder changes", reads, time.Since(start).Round(time.Millisecond))
	}
}
