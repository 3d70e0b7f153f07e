package vdrive_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/host/vdrive"
)

// heldStore holds directory reads when armed: each read fetches the
// slot's content at once, then waits for release before it returns, as a
// read that lost the race with a change does.
type heldStore struct {
	vdrive.Store
	armed   atomic.Bool
	reads   atomic.Int64
	held    chan struct{} // one send per read that is holding
	release chan struct{}
}

func newHeldStore(s vdrive.Store) *heldStore {
	return &heldStore{Store: s, held: make(chan struct{}, 100), release: make(chan struct{})}
}

func (s *heldStore) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	s.reads.Add(1)
	b, err := s.Store.ReadMutable(ctx, c)
	if s.armed.Load() {
		s.held <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b, err
}

// newHeldDrive is a grid, a heldStore on it (unarmed), a new root folder
// and a drive on it that caches folders for the test's length.
func newHeldDrive(t *testing.T) (*testgrid.Grid, *heldStore, context.Context, string, *vdrive.Drive) {
	t.Helper()
	g := newGrid(t)
	hs := newHeldStore(vdrive.GridStore(newClient(t, g)))
	ctx := ctxFor(t, time.Minute)
	root, err := vdrive.NewRoot(ctx, hs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := vdrive.New(hs, root.String(), vdrive.WithDirCache(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return g, hs, ctx, root.String(), d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSharedDirectoryReads: callers that need a folder's current version
// while a read of it is under way share the next read: one read for all
// of them, and each sees a change made after the earlier read began (it
// is never handed that read's older answer).
func TestSharedDirectoryReads(t *testing.T) {
	g, hs, ctx, root, d := newHeldDrive(t)
	other := open(t, g, root)
	if _, err := d.Stat(ctx, "/"); err != nil { // caches the root
		t.Fatal(err)
	}
	// The first caller's read fetches the root, then is held.
	hs.armed.Store(true)
	first := make(chan error, 1)
	go func() {
		_, err := d.Stat(ctx, "/x") // a cached miss: read again
		first <- err
	}()
	<-hs.held
	hs.armed.Store(false)
	// Another client makes /x after that read fetched the root.
	put(t, other, "/x", []byte("x"))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var in *vdrive.Info
			if in, errs[i] = d.Stat(ctx, "/x"); errs[i] == nil && in.Size() != 1 {
				errs[i] = fmt.Errorf("size %d", in.Size())
			}
		}()
	}
	waitFor(t, "callers queued behind the held read", func() bool { return vdrive.ReadWaiters(d) == n })
	reads0 := hs.reads.Load()
	close(hs.release)
	if err := <-first; !errors.Is(err, vdrive.ErrNotExist) {
		t.Fatalf("the held read's caller: %v, want not found (its read began before /x was made)", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d after the change: %v", i, err)
		}
	}
	if r := hs.reads.Load() - reads0; r != 1 {
		t.Fatalf("%d callers made %d reads, want 1 shared", n, r)
	}
}

// TestSharedReadCallerGivesUp: the caller that is to make a shared read
// gives up (its context ends) while it waits; the others still get an
// answer, reading for themselves.
func TestSharedReadCallerGivesUp(t *testing.T) {
	g, hs, ctx, root, d := newHeldDrive(t)
	if _, err := d.Stat(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	hs.armed.Store(true)
	first := make(chan error, 1)
	go func() { _, err := d.Stat(ctx, "/y"); first <- err }()
	<-hs.held
	hs.armed.Store(false)
	put(t, open(t, g, root), "/y", []byte("y"))
	lctx, cancel := context.WithCancel(ctx)
	lead := make(chan error, 1)
	go func() { _, err := d.Stat(lctx, "/y"); lead <- err }()
	waitFor(t, "the leader queued", func() bool { return vdrive.ReadWaiters(d) == 1 })
	other := make(chan error, 1)
	go func() { _, err := d.Stat(ctx, "/y"); other <- err }()
	waitFor(t, "a second caller queued", func() bool { return vdrive.ReadWaiters(d) == 2 })
	cancel()
	if err := <-lead; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	if err := <-other; err != nil {
		t.Fatalf("the caller left waiting: %v", err)
	}
	close(hs.release)
	<-first
}

// TestReadDoesNotHideOwnChange: a folder read that began before the
// drive's own change and returns after it does not replace the changed
// folder in the cache: the drive still lists its new file.
func TestReadDoesNotHideOwnChange(t *testing.T) {
	_, hs, ctx, _, d := newHeldDrive(t)
	hs.armed.Store(true)
	listed := make(chan []string, 1)
	go func() { listed <- names(t, d, "/") }() // reads the empty root, held
	<-hs.held
	hs.armed.Store(false)
	if err := d.Link(ctx, "/mine", litCap("mine")); err != nil {
		t.Fatal(err)
	}
	close(hs.release)
	if got := <-listed; len(got) != 0 {
		t.Fatalf("the held listing shows %v", got)
	}
	if got := names(t, d, "/"); len(got) != 1 || got[0] != "mine" {
		t.Fatalf("after a stale read returned, the drive lists %v, want its own change", got)
	}
}

// TestMismatchedWriteCap: an entry whose write cap is not its read cap's
// (a forged or damaged folder entry) is refused on every walk through it,
// also after the drive has walked the folder that write cap belongs to
// (read caps derived from write caps are kept).
func TestMismatchedWriteCap(t *testing.T) {
	g := newGrid(t)
	st := vdrive.GridStore(newClient(t, g))
	ctx := ctxFor(t, time.Minute)
	root, err := vdrive.NewRoot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := vdrive.New(st, root.String(), vdrive.WithDirCache(time.Hour))
	for _, p := range []string{"/a", "/b"} {
		if err := d.Mkdir(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := d.Stat(ctx, "/a")
	b, _ := d.Stat(ctx, "/b")
	put(t, d, "/b/in-b", []byte("b")) // walks /b: its read cap is kept
	rk, wk := root.ReadCap().Slot.ReadKey, root.Slot.WriteKey()
	keys := dirnode.NewKeys(rk[:], wk[:])
	err = st.Modify(ctx, root.Slot, func(old []byte) ([]byte, error) {
		return dirnode.Edit(ctx, old, keys, chunkStore{st}, nil, dirnode.Limits{}, func(tx *dirnode.Tx) error {
			return tx.Set("forged", a.ReadCap(), b.WriteCap(), dirnode.Metadata{Type: vdrive.TypeDir})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dd := range []*vdrive.Drive{d, open(t, g, root.String())} {
		if _, err := dd.Stat(ctx, "/forged/x"); !errors.Is(err, vdrive.ErrCorrupt) {
			t.Fatalf("walk through a forged entry: %v, want ErrCorrupt", err)
		}
		if err := dd.Mkdir(ctx, "/forged/x"); !errors.Is(err, vdrive.ErrCorrupt) {
			t.Fatalf("mkdir through a forged entry: %v, want ErrCorrupt", err)
		}
	}
	if got := names(t, d, "/b"); len(got) != 1 {
		t.Fatalf("/b lists %v", got)
	}
}
