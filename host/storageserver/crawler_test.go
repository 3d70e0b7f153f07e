package storageserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestCrawlerCollectsExpired: shares live while a lease is in force, are
// renewed by RenewLease, and are removed once every lease expired; shares
// without any lease get a grace lease first.
func TestCrawlerCollectsExpired(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	be := storagememory.New()
	cl, srv := rawClient(t, Config{Backend: be, LeaseDuration: time.Hour, Now: clock, CrawlPause: time.Millisecond})
	ctx := context.Background()
	put := func(index [16]byte) {
		t.Helper()
		secret := make([]byte, LeaseSecretSize)
		secret[0] = index[0]
		a, err := cl.Allocate(ctx, &pb.AllocateRequest{StorageIndex: index[:], ShareNums: []uint32{0, 1}, ShareSize: 4, LeaseSecret: secret})
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range a.Allocated {
			ws, err := cl.WriteShare(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ws.Send(&pb.WriteShareRequest{Handle: al.Handle, Offset: 0, Data: []byte("data")})
			if _, err := ws.CloseAndRecv(); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Seal(ctx, &pb.SealRequest{Handle: al.Handle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	kept, renewed, unleased := [16]byte{1}, [16]byte{2}, [16]byte{3}
	put(kept)
	put(renewed)
	// Shares written behind the server's back have no lease.
	w, _ := be.Create(ctx, storage.Ref{Index: unleased, Num: 0}, 1)
	w.WriteAt(ctx, []byte("x"), 0)
	w.Seal(ctx)
	count := func(index [16]byte) int {
		n, _ := be.List(ctx, index)
		return len(n)
	}
	steps := []struct {
		name                    string
		advance                 time.Duration
		renew                   bool
		kept, renewed, unleased int
	}{
		{"leases in force: nothing removed", 0, false, 2, 2, 1},
		{"renew one, then its old expiry passes", 40 * time.Minute, true, 2, 2, 1},
		{"unrenewed and grace leases expired: removed", 30 * time.Minute, false, 0, 2, 0},
		{"renewed and grace leases expire too", 2 * time.Hour, false, 0, 0, 0},
	}
	for _, s := range steps {
		now.Add(int64(s.advance / time.Second))
		if s.renew {
			secret := make([]byte, LeaseSecretSize)
			secret[0] = renewed[0]
			if _, err := cl.RenewLease(ctx, &pb.RenewLeaseRequest{StorageIndex: renewed[:], LeaseSecret: secret}); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.CrawlOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if k, r, u := count(kept), count(renewed), count(unleased); k != s.kept || r != s.renewed || u != s.unleased {
			t.Fatalf("%s: shares left %d %d %d, want %d %d %d", s.name, k, r, u, s.kept, s.renewed, s.unleased)
		}
	}
	st := srv.CrawlStats()
	if st.Passes != 4 || st.SharesRemoved != 5 || st.GraceLeases != 1 || st.Collected != 3 {
		t.Fatalf("crawl stats %+v", st)
	}
}
