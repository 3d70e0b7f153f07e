package storageserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// crashLeases drops a bbolt lease store as a kill -9 would: the db file
// is closed (its pages stay in the page cache) and the state file still
// says open.
func crashLeases(t *testing.T, ls leaseStore) {
	t.Helper()
	b := ls.(*boltLeases)
	b.mu.Lock()
	b.closed = true
	for b.running {
		b.idle.Wait()
	}
	b.mu.Unlock()
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	b.lock.Close()
}

// crashServer stops a server's goroutines and crashes its lease store.
func crashServer(t *testing.T, s *Server) {
	t.Helper()
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	crashLeases(t, s.leases)
}

// setLeaseRecord writes (or with exp zero deletes) one lease record in a
// closed db file behind the store's back: what a power loss can leave.
func setLeaseRecord(t *testing.T, path string, index [16]byte, owner [32]byte, exp time.Time) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := append(index[:], owner[:]...)
	if err := db.Update(func(tx *bolt.Tx) error {
		if exp.IsZero() {
			return tx.Bucket(leaseBucket).Delete(key)
		}
		return tx.Bucket(leaseBucket).Put(key, binary.BigEndian.AppendUint64(nil, uint64(exp.Unix())))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseStateReopen: what a start finds after a clean close, after a
// crash (page cache kept, as after kill -9), after a crash whose db file
// is garbage (as a power loss can leave it) and after a state file that
// cannot be parsed; and that a floor outlives a clean restart until it
// passes.
func TestLeaseStateReopen(t *testing.T) {
	const ld = time.Hour
	t0 := time.Unix(1_900_000_000, 0)
	cases := []struct {
		name     string
		damage   func(t *testing.T, path string) // after a crash; nil: clean close
		unclean  bool
		leasesIn bool // the acknowledged leases are in the reopened db
	}{
		{"clean close", nil, false, true},
		{"crash, db intact", func(*testing.T, string) {}, true, true},
		{"crash, db garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte{0xa5}, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"crash, db gone", func(t *testing.T, path string) { os.Remove(path) }, true, false},
		{"state file garbage", func(t *testing.T, path string) {
			os.WriteFile(path+".state", []byte("tarn leases v1\nstate ajar\n"), 0o600)
		}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "leases.db")
			clock := func() time.Time { return t0 }
			ls, info, err := openLeases(path, ld, clock)
			if err != nil || info.unclean || !info.floor.IsZero() {
				t.Fatalf("first open: %v %+v", err, info)
			}
			// One lease far past the open's ceiling, so the ceiling is raised.
			var latest time.Time
			for i := range 20 {
				latest = t0.Add(ld + time.Duration(i)*time.Hour)
				if err := ls.put([16]byte{byte(i)}, sha256.Sum256(nil), latest); err != nil {
					t.Fatal(err)
				}
			}
			if r := ls.(*boltLeases).raises.Load(); r < 1 || r > 20 {
				t.Fatalf("%d ceiling raises for 20 puts, 19 past the first ceiling", r)
			}
			if tc.damage == nil {
				if err := ls.close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crashLeases(t, ls)
				tc.damage(t, path)
			}
			ls, info, err = openLeases(path, ld, clock)
			if err != nil {
				t.Fatal(err)
			}
			if info.unclean != tc.unclean {
				t.Fatalf("unclean = %v, want %v (%+v)", info.unclean, tc.unclean, info)
			}
			if tc.unclean && info.floor.Before(latest) {
				t.Fatalf("floor %v before the latest acknowledged expiry %v", info.floor, latest)
			}
			if !tc.unclean && !info.floor.IsZero() {
				t.Fatalf("floor %v after a clean close", info.floor)
			}
			if got := ls.floor(); !got.Equal(info.floor) {
				t.Fatalf("store floor %v, open said %v", got, info.floor)
			}
			for i := range 20 {
				l, err := ls.list([16]byte{byte(i)})
				if err != nil {
					t.Fatalf("list %d: %v", i, err)
				}
				if tc.leasesIn && len(l) != 1 {
					t.Fatalf("lease %d after reopen: %v", i, l)
				}
			}
			// The store works after any of these, and a clean restart
			// keeps the floor until it passes.
			if err := ls.put([16]byte{99}, sha256.Sum256(nil), t0.Add(ld)); err != nil {
				t.Fatal(err)
			}
			if err := ls.close(); err != nil {
				t.Fatal(err)
			}
			floor := info.floor
			ls, info, err = openLeases(path, ld, clock)
			if err != nil || info.unclean || !info.floor.Equal(floor) {
				t.Fatalf("clean reopen: %v, unclean %v, floor %v, want %v", err, info.unclean, info.floor, floor)
			}
			ls.close()
			if !floor.IsZero() {
				after := func() time.Time { return floor.Add(time.Second) }
				ls, info, err = openLeases(path, ld, after)
				if err != nil || !info.floor.IsZero() {
					t.Fatalf("reopen past the floor: %v, floor %v", err, info.floor)
				}
				ls.close()
			}
		})
	}
}

// TestCrawlerLeaseFloor: a renewal acknowledged and then lost in a crash
// (its record back at the older expiry, as a power loss can leave it)
// does not let the crawler remove the shares before the lost renewal would
// have expired; after the floor they are collected. A reopen after a
// crash of the process keeps every acknowledged lease.
func TestCrawlerLeaseFloor(t *testing.T) {
	const ld = time.Hour
	var now atomic.Int64
	now.Store(1_900_000_000)
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	be := storagememory.New()
	path := filepath.Join(t.TempDir(), "leases.db")
	cfg := Config{Backend: be, LeasePath: path, LeaseDuration: ld, Now: clock, CrawlPause: time.Millisecond}
	ctx := context.Background()
	secret := bytes.Repeat([]byte{3}, LeaseSecretSize)
	owner := sha256.Sum256(secret)
	idx := bytes.Repeat([]byte{7}, storage.StorageIndexSize)
	index := [16]byte(idx)
	held := func() int { n, _ := be.List(ctx, index); return len(n) }

	// Run 1: the put and its lease (expiry t0+1h), closed cleanly.
	t0 := clock()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.PutShares(ctx, putReq(idx, 10, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	// Run 2: a renewal at t0+30m (expiry t0+1h30m), then a crash.
	now.Add(30 * 60)
	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.RenewLease(ctx, &pb.RenewLeaseRequest{StorageIndex: idx, LeaseSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	renewed := time.Unix(r.ExpiresUnix, 0)
	crashServer(t, srv)

	// A process crash keeps the acknowledged renewal.
	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := srv.Leases(index)
	if err != nil || len(ls) != 1 || !ls[0].Expires.Equal(renewed) {
		t.Fatalf("leases after a crash of the process: %v %v, want one expiring %v", ls, err, renewed)
	}
	crashServer(t, srv)
	// A power loss may not: the record is back at run 1's expiry.
	setLeaseRecord(t, path, index, owner, t0.Add(ld))

	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	floor := srv.CrawlStats().Floor
	if floor.Before(renewed) {
		t.Fatalf("floor %v before the lost renewal's expiry %v", floor, renewed)
	}
	steps := []struct {
		name string
		at   time.Time
		held int
	}{
		{"the stale lease expired, the lost renewal not", t0.Add(ld + 10*time.Minute), 2},
		{"the lost renewal expired, the floor not passed", renewed.Add(time.Second), 2},
		{"past the floor", floor.Add(time.Second), 0},
	}
	for _, s := range steps {
		if s.at.Before(clock()) {
			t.Fatalf("%s: step goes back in time", s.name)
		}
		now.Store(s.at.Unix())
		if err := srv.CrawlOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if got := held(); got != s.held {
			t.Fatalf("%s: %d shares held, want %d (crawl stats %+v)", s.name, got, s.held, srv.CrawlStats())
		}
	}
	if st := srv.CrawlStats(); st.HeldByFloor != 2 || st.Collected != 1 {
		t.Fatalf("crawl stats %+v, want 2 held by the floor, 1 collected", st)
	}
}

// envLeaseSyncs makes the test binary put leases from 8 goroutines into a
// fresh store at the path it names, then close it.
const envLeaseSyncs = "TARN_TEST_LEASE_SYNCS"

const leaseSyncPuts = 400

func leaseSyncer(path string) {
	ls, _, err := openLeases(path, DefaultLeaseDuration, time.Now)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	var n atomic.Int64
	exp := time.Now().Add(DefaultLeaseDuration)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := n.Add(1); i <= leaseSyncPuts; i = n.Add(1) {
				if err := ls.put([16]byte{byte(i >> 8), byte(i)}, sha256.Sum256(nil), exp); err != nil {
					fmt.Println("put:", err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Println("commits", ls.(*boltLeases).commits.Load())
	if err := ls.close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(1)
	}
}

// TestLeaseSyncsPerPut counts, with strace, the fsync and fdatasync calls
// on the lease db and its state file while a process opens a store, puts
// leaseSyncPuts leases from 8 goroutines and closes it: a handful in all
// (the open, the state file, the db growing, the close), not one per
// commit.
func TestLeaseSyncsPerPut(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "leases.db")
	trace := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", trace, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envLeaseSyncs+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "ptrace") {
			t.Skipf("strace cannot trace here: %s", out)
		}
		t.Fatalf("%v: %s", err, out)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	syncs := 0
	for _, line := range strings.Split(string(b), "\n") {
		if (strings.Contains(line, "fsync(") || strings.Contains(line, "fdatasync(")) && strings.Contains(line, dir) {
			syncs++
		}
	}
	t.Logf("%d puts, %s: %d fsync+fdatasync of the lease files", leaseSyncPuts, strings.TrimSpace(string(out)), syncs)
	if syncs == 0 || syncs > 12 {
		t.Fatalf("%d syncs of the lease files for %d puts, want 1 to 12", syncs, leaseSyncPuts)
	}
}

// FuzzParseLeaseState: the state file parser never panics, and what it
// accepts marshals back to the same bytes.
func FuzzParseLeaseState(f *testing.F) {
	f.Add(leaseState{open: true, ceiling: 1_900_000_000, floor: 0}.marshal())
	f.Add(leaseState{ceiling: 5, floor: 7}.marshal())
	f.Add([]byte("tarn leases v1\nstate open\nceiling -1\nfloor 0\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseLeaseState(b)
		if err != nil {
			return
		}
		if got := s.marshal(); !bytes.Equal(got, b) {
			t.Fatalf("%q parsed to %+v, marshals to %q", b, s, got)
		}
	})
}

// TestLeaseSecondOpen: a second store on the same files, while the first
// is open, fails in one line and leaves the first one's state file as it
// was (its ceiling is what a crash of the first would be judged by).
func TestLeaseSecondOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	ls, _, err := openLeases(path, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	if err := ls.put([16]byte{1}, sha256.Sum256(nil), time.Now().Add(30*time.Hour)); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path + ".state")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openLeases(path, time.Hour, time.Now); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v, want in use", err)
	}
	if after, _ := os.ReadFile(path + ".state"); !bytes.Equal(after, before) {
		t.Fatalf("second open changed the state file:\n%s\nto\n%s", before, after)
	}
}

// TestLeaseRebuildLarge: a rebuild after a crash copies every record of a
// db larger than one rebuild batch.
func TestLeaseRebuildLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	ls, _, err := openLeases(path, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	crashLeases(t, ls)
	const n = 2*rebuildBatch + 17
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			var k [leaseKeySize]byte
			binary.BigEndian.PutUint32(k[:], uint32(i))
			if err := tx.Bucket(leaseBucket).Put(k[:], binary.BigEndian.AppendUint64(nil, uint64(i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ls, info, err := openLeases(path, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	if !info.unclean || info.kept != n || info.readErr != nil {
		t.Fatalf("rebuild: unclean %v, kept %d, read error %v; want %d kept", info.unclean, info.kept, info.readErr, n)
	}
	for _, i := range []int{0, rebuildBatch, n - 1} {
		var idx [16]byte
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		if l, err := ls.list(idx); err != nil || len(l) != 1 || l[0].Expires.Unix() != int64(i) {
			t.Fatalf("record %d after the rebuild: %v %v", i, l, err)
		}
	}
}

// TestLeaseCeilingLeaseDurationShortened: a lease acknowledged under a
// long LeaseDuration and made durable by a clean close is still covered
// after the next run, started with a shorter LeaseDuration, crashes with
// its db lost (a power loss can damage pages of earlier runs' records):
// the floor of the start after is past that lease's expiry.
func TestLeaseCeilingLeaseDurationShortened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	t0 := time.Unix(1_900_000_000, 0)
	clock := func() time.Time { return t0 }
	ls, _, err := openLeases(path, 60*24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(60 * 24 * time.Hour)
	if err := ls.put([16]byte{1}, sha256.Sum256(nil), exp); err != nil {
		t.Fatal(err)
	}
	if err := ls.close(); err != nil {
		t.Fatal(err)
	}
	// Run 2: a shorter LeaseDuration, then a crash that loses the db.
	ls, _, err = openLeases(path, 31*24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	crashLeases(t, ls)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ls, info, err := openLeases(path, 31*24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	if !info.unclean || info.floor.Before(exp) {
		t.Fatalf("after the crash: unclean %v, floor %v; want a floor at or after %v (the lost lease's expiry)", info.unclean, info.floor, exp)
	}
}
