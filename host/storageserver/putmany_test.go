package storageserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// countingBackend is a real backend that counts the calls that store
// shares, and fails the shares of one storage index with an I/O error.
type countingBackend struct {
	storage.Backend
	puts, batches atomic.Int32
	shares        atomic.Int32 // given to PutBatch
	bad           [storage.StorageIndexSize]byte
}

var errDiskOnFire = errors.New("disk on fire")

func (c *countingBackend) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	c.puts.Add(1)
	if ref.Index == c.bad {
		return fmt.Errorf("put share %s: %w", ref, errDiskOnFire)
	}
	return c.Backend.(storage.Putter).Put(ctx, ref, data)
}

func (c *countingBackend) PutBatch(ctx context.Context, puts []storage.PutItem) ([]error, error) {
	c.batches.Add(1)
	c.shares.Add(int32(len(puts)))
	var good []storage.PutItem
	var at []int
	errs := make([]error, len(puts))
	for i, p := range puts {
		if p.Ref.Index == c.bad {
			errs[i] = fmt.Errorf("put share %s: %w", p.Ref, errDiskOnFire)
			continue
		}
		good, at = append(good, p), append(at, i)
	}
	got, err := c.Backend.(storage.BatchPutter).PutBatch(ctx, good)
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		errs[i] = got[k]
	}
	return errs, nil
}

// plainBackend hides the backend's Put and PutBatch (a backend, or an
// old plugin, without them).
type plainBackend struct{ storage.Backend }

// TestPutManyOneBackendCall: on the disk backend, a PutShares of several
// shares and a PutSharesBatch reach the backend as one PutBatch each;
// every share stored reads back; a share held already is answered as
// such; the put whose share fails fails alone, naming it, while the
// others of the batch are stored and leased. A backend without PutBatch
// (or Put) stores the same batch share by share.
func TestPutManyOneBackendCall(t *testing.T) {
	ctx := context.Background()
	idx := func(b byte) []byte { return bytes.Repeat([]byte{b}, storage.StorageIndexSize) }
	for _, tc := range []struct {
		name    string
		plain   bool
		batches int32
	}{
		{"batch", false, 2},
		{"no batch", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := storagedisk.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			cb := &countingBackend{Backend: d, bad: [16]byte(idx(9))}
			var be storage.Backend = cb
			if tc.plain {
				be = plainBackend{d}
			}
			cl, srv := rawClient(t, Config{Backend: be})
			if err := d.Put(ctx, storage.Ref{Index: [16]byte(idx(2)), Num: 1}, bytes.Repeat([]byte{2}, 4096)); err != nil {
				t.Fatal(err)
			}
			r, err := cl.PutShares(ctx, putReq(idx(1), 4096, 0, 1, 2, 3))
			if err != nil || fmt.Sprint(r.Stored) != "[0 1 2 3]" {
				t.Fatalf("put shares: %v, %v", r, err)
			}
			br, err := cl.PutSharesBatch(ctx, &pb.PutSharesBatchRequest{Puts: []*pb.PutSharesRequest{
				putReq(idx(2), 4096, 0, 1, 2), putReq(idx(9), 4096, 0, 1), putReq(idx(3), 4096, 4),
			}})
			if err != nil {
				t.Fatal(err)
			}
			res := br.Results
			if tc.plain {
				// No injected failure without the counting backend.
				if res[1].Code != 0 {
					t.Fatalf("put of index 9: %v", res[1])
				}
			} else if res[1].Code == 0 || !bytes.Contains([]byte(res[1].Message), []byte("share 0: put share")) {
				t.Fatalf("failing put answered %v, want its own error naming share 0", res[1])
			}
			if res[0].Code != 0 || fmt.Sprint(res[0].Response.Stored, res[0].Response.AlreadyHave) != "[0 2] [1]" {
				t.Fatalf("put of index 2 answered %v", res[0])
			}
			if res[2].Code != 0 || fmt.Sprint(res[2].Response.Stored) != "[4]" {
				t.Fatalf("put of index 3 answered %v", res[2])
			}
			for _, ref := range []storage.Ref{{Index: [16]byte(idx(1)), Num: 3}, {Index: [16]byte(idx(2)), Num: 2}, {Index: [16]byte(idx(3)), Num: 4}} {
				got := make([]byte, 4096)
				if n, _ := d.ReadAt(ctx, ref, got, 0); n != 4096 || !bytes.Equal(got, bytes.Repeat([]byte{byte(ref.Num + 1)}, 4096)) {
					t.Fatalf("share %s reads back other bytes", ref)
				}
			}
			for _, b := range []byte{1, 2, 3} {
				if ls, err := srv.Leases([16]byte(idx(b))); err != nil || len(ls) != 1 {
					t.Fatalf("leases of index %d: %v %v", b, ls, err)
				}
			}
			if got := cb.batches.Load(); got != tc.batches {
				t.Fatalf("%d backend PutBatch calls, want %d", got, tc.batches)
			}
			if !tc.plain && (cb.puts.Load() != 0 || cb.shares.Load() != 4+6) {
				t.Fatalf("%d Puts and %d shares batched, want 0 and 10", cb.puts.Load(), cb.shares.Load())
			}
		})
	}
}
