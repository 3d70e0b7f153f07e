//go:build unix

package storagedisk

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// batchData fills share k of batch i of writer g in the batch kill test:
// small shares (packed) and, as the last of each batch, one over the
// pack limit (a file of its own).
func batchData(g, i, k int) []byte {
	rng := rand.New(rand.NewPCG(uint64(g)<<32|uint64(i), uint64(k)))
	n := 4<<10 + int(rng.Uint32()%(4<<10))
	if k == batchShares-1 {
		n = maxPackShare + 1 + int(rng.Uint32()%(32<<10))
	}
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return b
}

const batchShares = 6

func batchRef(g, i, k int) storage.Ref { r := killRef(g, i); r.Num = uint32(k); return r }

// TestPluginKill9Batch: SIGKILL of the plugin while four writers store
// batches of shares with PutBatch (packed and one large share each):
// every call in flight fails, none hangs; a new process on the folder has
// every share of every batch whose answer said stored, byte for byte, and
// none of a batch never sent.
func TestPluginKill9Batch(t *testing.T) {
	for _, tc := range paths[1:] {
		t.Run(tc.name, func(t *testing.T) { testKill9Batch(t, tc) })
	}
}

func testKill9Batch(t *testing.T, path path) {
	dir := t.TempDir()
	c, p := startPath(t, path, dir)
	const writers = 4
	var (
		mu       sync.Mutex
		stored   = map[[3]int]bool{} // its outcome was nil
		sent     = map[[2]int]bool{} // the batch was sent
		lastErr  = make([]error, writers)
		attempts = make([]int, writers)
		wg       sync.WaitGroup
	)
	ctx := context.Background()
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				attempts[g] = i + 1
				puts := make([]storage.PutItem, batchShares)
				for k := range puts {
					puts[k] = storage.PutItem{Ref: batchRef(g, i, k), Data: batchData(g, i, k)}
				}
				mu.Lock()
				sent[[2]int{g, i}] = true
				mu.Unlock()
				errs, err := c.PutBatch(ctx, puts)
				if err != nil {
					lastErr[g] = err
					return
				}
				mu.Lock()
				for k, e := range errs {
					if e == nil {
						stored[[3]int{g, i, k}] = true
					} else if lastErr[g] == nil {
						lastErr[g] = e
					}
				}
				mu.Unlock()
				if lastErr[g] != nil {
					return
				}
			}
		}()
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(stored)
		mu.Unlock()
		if n >= 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d shares stored in 60s", n)
		}
	}
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("batches in flight at the kill hung")
	}
	for g, err := range lastErr {
		if err == nil {
			t.Errorf("writer %d: no error after the kill", g)
		}
	}
	t.Logf("stored %d shares before the kill; last error: %v", len(stored), lastErr[0])

	c2, _ := startPath(t, path, dir)
	if n := countTmp(t, dir); n != 0 {
		t.Errorf("%d temp files left after a restart", n)
	}
	for g := range writers {
		for i := range attempts[g] + 1 {
			for k := range batchShares {
				r := batchRef(g, i, k)
				want := batchData(g, i, k)
				got := make([]byte, len(want)+1)
				n, err := c2.ReadAt(ctx, r, got, 0)
				visible := err == nil || n > 0 || !isNotFound(err)
				switch {
				case stored[[3]int{g, i, k}] && !visible:
					t.Errorf("share %d/%d/%d stored before the kill is gone: %v", g, i, k, err)
				case !sent[[2]int{g, i}] && visible:
					t.Errorf("share %d/%d/%d never sent is visible", g, i, k)
				case visible && (n != len(want) || !bytes.Equal(got[:n], want)):
					t.Errorf("share %d/%d/%d reads back %d bytes (want %d), err %v", g, i, k, n, len(want), err)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("folder %s", dir)
	}
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// TestPutBatchOneSync: a batch's packed shares are made durable by one
// group commit (one fdatasync), answered stored and visible; after a
// failed sync every packed share of the batch fails and none is visible,
// while its large share (a file of its own) is stored, and a share
// reopened from the folder reads the same.
func TestPutBatchOneSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := newDisk(t, dir)
	mk := func(seed byte, n int) []storage.PutItem {
		puts := make([]storage.PutItem, n)
		for k := range puts {
			puts[k] = storage.PutItem{Ref: storage.Ref{Index: [16]byte{seed, byte(k / 3)}, Num: uint32(k)}, Data: batchData(int(seed), 0, k%(batchShares-1))}
		}
		return puts
	}
	for _, tc := range []struct {
		name      string
		fail      bool
		wantSyncs uint64
	}{
		{"synced", false, 1},
		{"sync fails", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := byte(1)
			if tc.fail {
				seed = 2
			}
			puts := mk(seed, 20)
			large := storage.PutItem{Ref: storage.Ref{Index: [16]byte{seed, 99}}, Data: batchData(0, 0, batchShares-1)}
			puts = append(puts, large)
			real := packSync
			if tc.fail {
				packSync = func(*os.File) error { return syscall.EIO }
			}
			before := d.pack.syncs.Load()
			errs, err := d.PutBatch(ctx, puts)
			packSync = real
			if err != nil {
				t.Fatal(err)
			}
			if got := d.pack.syncs.Load() - before; got != tc.wantSyncs {
				t.Errorf("%d pack syncs for a batch, want %d", got, tc.wantSyncs)
			}
			for k, p := range puts {
				_, serr := d.Stat(ctx, p.Ref)
				switch {
				case k == len(puts)-1 || !tc.fail:
					if errs[k] != nil || serr != nil {
						t.Fatalf("share %d: put %v, stat %v", k, errs[k], serr)
					}
					got := make([]byte, len(p.Data))
					if n, _ := d.ReadAt(ctx, p.Ref, got, 0); n != len(got) || !bytes.Equal(got, p.Data) {
						t.Fatalf("share %d reads back other bytes", k)
					}
				default:
					if !errors.Is(errs[k], syscall.EIO) || !isNotFound(serr) {
						t.Fatalf("share %d after a failed sync: put %v, stat %v", k, errs[k], serr)
					}
				}
			}
		})
	}
	// The stored shares are there after a reopen; the failed ones are not
	// (their records may have reached the disk: an extra copy at most,
	// never wrong bytes).
	d.Close()
	d2 := newDisk(t, dir)
	for k, p := range mk(1, 20) {
		got := make([]byte, len(p.Data))
		if n, _ := d2.ReadAt(ctx, p.Ref, got, 0); n != len(got) || !bytes.Equal(got, p.Data) {
			t.Fatalf("share %d after reopen reads back other bytes", k)
		}
	}
}
