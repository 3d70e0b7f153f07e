package storageserver

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// failNum is a backend whose Create of share number bad fails: a put of
// shares {good, bad} stores good and fails as a whole.
type failNum struct {
	storage.Backend
	bad uint32
}

func (f failNum) Create(ctx context.Context, ref storage.Ref, size int64) (storage.Writer, error) {
	if ref.Num == f.bad {
		return nil, errors.New("injected create failure")
	}
	return f.Backend.Create(ctx, ref, size)
}

// Indexes keeps the start count working through the wrapper.
func (f failNum) Indexes(ctx context.Context, fn func(index [storage.StorageIndexSize]byte) error) error {
	return f.Backend.(storage.Indexer).Indexes(ctx, fn)
}

// TestHeldCountsStoredSharesOfFailedPut: a PutShares that stores
// some shares but is answered with an error (another share failed, or the
// lease commit failed: "shares stay stored") must still count what it
// stored, or Held drifts below the backend until the next restart (and
// below zero once the GC removes those shares).
func TestHeldCountsStoredSharesOfFailedPut(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) (pb.StorageServerClient, *Server)
		nums  []uint32
	}{
		{"one share of two fails", func(t *testing.T) (pb.StorageServerClient, *Server) {
			return rawClient(t, Config{Backend: failNum{storagememory.New(), 2}})
		}, []uint32{1, 2}},
		{"lease commit fails", func(t *testing.T) (pb.StorageServerClient, *Server) {
			cl, srv := rawClient(t, Config{LeasePath: filepath.Join(t.TempDir(), "leases.db")})
			waitCounted(t, srv)
			if err := srv.leases.(*boltLeases).db.Close(); err != nil {
				t.Fatal(err)
			}
			return cl, srv
		}, []uint32{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, srv := tc.setup(t)
			waitCounted(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			idx := bytes.Repeat([]byte{9}, storage.StorageIndexSize)
			if _, err := cl.PutShares(ctx, putReq(idx, 100, tc.nums...)); err == nil {
				t.Fatal("put did not fail")
			}
			nums, err := srv.cfg.Backend.List(ctx, [16]byte(idx))
			if err != nil {
				t.Fatal(err)
			}
			if len(nums) == 0 {
				t.Fatal("nothing stayed stored: the scenario did not happen")
			}
			if h := srv.Held(); h.Shares != int64(len(nums)) {
				t.Fatalf("backend holds %d share(s) %v after the failed put, Held says %d", len(nums), nums, h.Shares)
			}
		})
	}
}
