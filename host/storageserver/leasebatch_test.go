package storageserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestLeaseBeginWait: records begun before any wait share the first
// wait's commit, later waits find theirs done, each wait gives its own
// outcome; a record begun and not waited for when the store closes is
// committed by the close (durable after reopen), and its wait then
// answers; a begin after close fails.
func TestLeaseBeginWait(t *testing.T) {
	exp := time.Unix(2_000_000_000, 0)
	cases := []struct {
		name    string
		begun   int // records begun before the first wait
		waited  int // of those, how many wait before close
		commits int64
	}{
		{"one", 1, 1, 1},
		{"eight share a commit", 8, 8, 1},
		{"close commits the unwaited", 8, 3, 1},
		{"none waited", 4, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "leases.db")
			ls, _, err := openLeases(path, DefaultLeaseDuration, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			b := ls.(*boltLeases)
			waits := make([]func() error, tc.begun)
			for i := range waits {
				waits[i] = b.begin([16]byte{byte(i)}, sha256.Sum256([]byte{byte(i)}), exp)
			}
			if c := b.commits.Load(); c != 0 {
				t.Fatalf("%d commits before any wait, want 0", c)
			}
			var wg sync.WaitGroup
			errs := make([]error, tc.begun)
			for i := range tc.waited {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = waits[i]() }()
			}
			wg.Wait()
			if err := ls.close(); err != nil {
				t.Fatal(err)
			}
			for i := tc.waited; i < tc.begun; i++ {
				errs[i] = waits[i]() // after close: committed by it
			}
			for i, err := range errs {
				if err != nil {
					t.Fatalf("wait %d: %v", i, err)
				}
			}
			if c := b.commits.Load(); c != tc.commits {
				t.Fatalf("%d commits for %d records, want %d", c, tc.begun, tc.commits)
			}
			if err := b.begin([16]byte{200}, sha256.Sum256(nil), exp)(); err == nil {
				t.Fatal("begin after close succeeded")
			}
			ls, info, err := openLeases(path, DefaultLeaseDuration, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer ls.close()
			if info.unclean {
				t.Fatal("reopen after close: unclean")
			}
			for i := range tc.begun {
				l, err := ls.list([16]byte{byte(i)})
				if err != nil || len(l) != 1 || !l[0].Expires.Equal(exp) {
					t.Fatalf("lease %d after reopen: %v %v", i, l, err)
				}
			}
		})
	}
}

// TestLeaseWaitDuringCommit: a record begun while another's commit runs
// is not in that commit; its wait waits for it and commits next.
func TestLeaseWaitDuringCommit(t *testing.T) {
	ls, _, err := openLeases(filepath.Join(t.TempDir(), "leases.db"), DefaultLeaseDuration, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	b := ls.(*boltLeases)
	exp := time.Unix(2_000_000_000, 0)
	w1 := b.begin([16]byte{1}, sha256.Sum256(nil), exp)
	b.mu.Lock()
	b.running = true // a commit of others is under way
	b.mu.Unlock()
	w2 := b.begin([16]byte{2}, sha256.Sum256(nil), exp)
	done := make(chan error, 2)
	go func() { done <- w1() }()
	go func() { done <- w2() }()
	select {
	case err := <-done:
		t.Fatalf("a wait returned (%v) while the commit ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.mu.Lock()
	b.running = false
	b.idle.Broadcast()
	b.mu.Unlock()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if c := b.commits.Load(); c != 1 {
		t.Fatalf("%d commits, want 1 (both records queued when the running one ended)", c)
	}
	for _, i := range []byte{1, 2} {
		if l, err := ls.list([16]byte{i}); err != nil || len(l) != 1 {
			t.Fatalf("lease %d: %v %v", i, l, err)
		}
	}
}

// barrierBackend is the memory backend whose Put holds each share until
// n Puts have begun, as a disk backend's group commit returns the puts it
// syncs together.
type barrierBackend struct {
	storage.Backend
	n       int
	mu      sync.Mutex
	started int
	all     chan struct{}
}

func (b *barrierBackend) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	b.mu.Lock()
	if b.started++; b.started == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-ctx.Done():
		return ctx.Err()
	}
	return storage.Put(ctx, b.Backend, ref, data)
}

// TestPutSharesLeasesShareCommit: PutShares calls whose shares the
// backend stores together have their leases committed together (one
// commit, not one each), and each is answered only with its lease
// committed.
func TestPutSharesLeasesShareCommit(t *testing.T) {
	const n = 8
	// Each call's two shares go to the backend together (storage.PutBatch;
	// this backend has no batch, so two Puts at once): hold every Put
	// until all 2n have begun.
	be := &barrierBackend{Backend: storagememory.New(), n: 2 * n, all: make(chan struct{})}
	cl, srv := rawClient(t, Config{Backend: be, LeasePath: filepath.Join(t.TempDir(), "leases.db")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := bytes.Repeat([]byte{byte(i + 1)}, storage.StorageIndexSize)
			r, err := cl.PutShares(ctx, putReq(idx, 100, 0, 1))
			if err == nil && len(r.Stored) != 2 {
				err = fmt.Errorf("stored %v", r.Stored)
			}
			if err == nil {
				var ls []Lease
				if ls, err = srv.Leases([16]byte(idx)); err == nil && len(ls) != 1 {
					err = fmt.Errorf("%d leases once answered", len(ls))
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if c := srv.leases.(*boltLeases).commits.Load(); c != 1 {
		t.Fatalf("%d lease commits for %d puts stored together, want 1", c, n)
	}
}
