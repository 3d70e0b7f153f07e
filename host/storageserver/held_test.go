package storageserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// waitCounted waits for the start count to end and returns Held.
func waitCounted(t *testing.T, srv *Server) Held {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := srv.Held()
		if !h.Counting {
			if h.Err != nil {
				t.Fatalf("count: %v", h.Err)
			}
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("still counting: %+v", h)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sealOne writes one share through Allocate, WriteShare and Seal.
func sealOne(t *testing.T, cl pb.StorageServerClient, index [16]byte, data []byte) {
	t.Helper()
	ctx := context.Background()
	a, err := cl.Allocate(ctx, &pb.AllocateRequest{StorageIndex: index[:], ShareNums: []uint32{0}, ShareSize: int64(len(data)), LeaseSecret: make([]byte, LeaseSecretSize)})
	if err != nil || len(a.Allocated) != 1 {
		t.Fatalf("allocate: %v %v", a, err)
	}
	ws, err := cl.WriteShare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Send(&pb.WriteShareRequest{Handle: a.Allocated[0].Handle, Data: data}); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Seal(ctx, &pb.SealRequest{Handle: a.Allocated[0].Handle}); err != nil {
		t.Fatal(err)
	}
}

// TestHeldSurvivesRestart: shares stored by every put path and removed by
// the lease crawler are counted as held (not as sealed since start), and a
// restarted server counts the same from its backend.
func TestHeldSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	var now atomic.Int64
	now.Store(time.Now().Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	cfg := func(be storage.Backend) Config {
		return Config{Backend: be, LeaseDuration: time.Hour, Now: clock, CrawlPause: time.Millisecond}
	}
	disk, err := storagedisk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	cl, srv := rawClient(t, cfg(disk))
	if h := waitCounted(t, srv); h.Shares != 0 || h.Bytes != 0 {
		t.Fatalf("empty backend holds %+v", h)
	}
	ctx := context.Background()
	old := [16]byte{9}
	sealOne(t, cl, old, []byte("abcd")) // its lease expires first
	now.Add(40 * 60)

	a, b, c := [16]byte{1}, [16]byte{2}, [16]byte{3}
	if _, err := cl.PutShares(ctx, putReq(a[:], 100, 0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	// Shares held already are not counted again.
	if r, err := cl.PutShares(ctx, putReq(a[:], 100, 2, 3)); err != nil || len(r.AlreadyHave) != 1 {
		t.Fatalf("put again: %v %v", r, err)
	}
	br, err := cl.PutSharesBatch(ctx, &pb.PutSharesBatchRequest{Puts: []*pb.PutSharesRequest{putReq(b[:], 50, 0, 1), putReq(c[:], 10, 5)}})
	if err != nil || len(br.Results) != 2 || br.Results[0].Response == nil || br.Results[1].Response == nil {
		t.Fatalf("batch: %v %v", br, err)
	}
	sealOne(t, cl, c, []byte("xyz"))
	want := Held{Shares: 1 + 4 + 2 + 1 + 1, Bytes: 4 + 400 + 100 + 10 + 3}
	if h := srv.Held(); h != want {
		t.Fatalf("held %+v, want %+v", h, want)
	}

	// The crawler removes the expired index's share.
	now.Add(30 * 60)
	if err := srv.CrawlOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := disk.List(ctx, old); len(n) != 0 {
		t.Fatalf("crawler left %v", n)
	}
	want.Shares, want.Bytes = want.Shares-1, want.Bytes-4
	if h := srv.Held(); h != want {
		t.Fatalf("held after the crawler %+v, want %+v", h, want)
	}
	// Sealed counts what was sealed since start, removed or not.
	if sealed := srv.Stats().Sealed; sealed != want.Shares+1 {
		t.Fatalf("sealed %d, want %d", sealed, want.Shares+1)
	}

	// Restart on the same folder: the count from the backend agrees.
	srv.Close()
	disk.Close()
	disk2, err := storagedisk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk2.Close() })
	_, srv2 := rawClient(t, cfg(disk2))
	if h := waitCounted(t, srv2); h != want {
		t.Fatalf("held after restart %+v, want %+v", h, want)
	}
}

// gatedStat holds the start count's first Stat of a share of index gate
// until released.
type gatedStat struct {
	storage.Backend
	storage.Indexer
	index   [16]byte
	gate    chan struct{}
	waiting chan struct{}
	once    atomic.Bool
}

func (g *gatedStat) Stat(ctx context.Context, ref storage.Ref) (int64, error) {
	if ref.Index == g.index && g.once.CompareAndSwap(false, true) {
		close(g.waiting)
		<-g.gate
	}
	return g.Backend.Stat(ctx, ref)
}

// TestHeldWhileCounting: shares stored while the start count runs are
// counted once, whether their storage index is new or held already,
// before the count's cursor or after it (then the count's listing has
// them, and adding them too would count them twice).
func TestHeldWhileCounting(t *testing.T) {
	mem := storagememory.New()
	ctx := context.Background()
	counted, held, later := [16]byte{3}, [16]byte{7}, [16]byte{8}
	for _, r := range []storage.Ref{{Index: counted, Num: 0}, {Index: held, Num: 0}, {Index: held, Num: 1}, {Index: later, Num: 0}} {
		if err := storage.Put(ctx, mem, r, make([]byte, 30)); err != nil {
			t.Fatal(err)
		}
	}
	g := &gatedStat{Backend: mem, Indexer: mem.(storage.Indexer), index: held, gate: make(chan struct{}), waiting: make(chan struct{})}
	cl, srv := rawClient(t, Config{Backend: g})
	<-g.waiting // index 3 counted, 7 being counted, 8 not yet
	for _, idx := range [][16]byte{{1}, {5}, {9}, counted, later} {
		if _, err := cl.PutShares(ctx, putReq(idx[:], 20, 4)); err != nil {
			t.Fatal(err)
		}
	}
	if h := srv.Held(); !h.Counting {
		t.Fatalf("not counting while the count waits: %+v", h)
	}
	close(g.gate)
	if h := waitCounted(t, srv); h.Shares != 4+5 || h.Bytes != 120+100 {
		t.Fatalf("held %+v, want 9 shares of 220 bytes", h)
	}
}

// A backend that cannot list its indexes: the count says why, and the
// changes since start are still counted.
func TestHeldWithoutIndexer(t *testing.T) {
	cl, srv := rawClient(t, Config{Backend: oldBackend{storagememory.New()}})
	idx := [16]byte{4}
	if _, err := cl.PutShares(context.Background(), putReq(idx[:], 10, 0)); err != nil {
		t.Fatal(err)
	}
	h := srv.Held()
	if h.Counting || h.Err == nil || h.Shares != 1 || h.Bytes != 10 {
		t.Fatalf("held %+v", h)
	}
}

// TestOnNoSpace: every refusal for lack of space (reserve or backend full,
// by any put path) and a version answer with no room are reported; other
// refusals are not.
func TestOnNoSpace(t *testing.T) {
	idx := make([]byte, storage.StorageIndexSize)
	idx[0] = 5
	for _, tc := range []struct {
		name string
		cfg  Config
		call func(pb.StorageServerClient) error
		want int64
	}{
		{"put over the reserve", Config{Reserved: 1 << 40}, func(c pb.StorageServerClient) error {
			_, err := c.PutShares(context.Background(), putReq(idx, 100, 0))
			return err
		}, 1},
		{"put on a full backend", Config{Backend: storagememory.NewLimit(150)}, func(c pb.StorageServerClient) error {
			_, err := c.PutShares(context.Background(), putReq(idx, 100, 0, 1))
			return err
		}, 1},
		{"batch over the reserve", Config{Reserved: 1 << 40}, func(c pb.StorageServerClient) error {
			r, err := c.PutSharesBatch(context.Background(), &pb.PutSharesBatchRequest{Puts: []*pb.PutSharesRequest{putReq(idx, 100, 0)}})
			if err != nil {
				return err
			}
			return status.Error(codes.Code(r.Results[0].Code), r.Results[0].Message)
		}, 1},
		{"allocate over the reserve", Config{Reserved: 1 << 40}, func(c pb.StorageServerClient) error {
			_, err := c.Allocate(context.Background(), &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{0}, ShareSize: 10, LeaseSecret: make([]byte, LeaseSecretSize)})
			return err
		}, 1},
		{"version of a full server", Config{Reserved: 1 << 40}, func(c pb.StorageServerClient) error {
			_, err := c.GetVersion(context.Background(), &pb.GetVersionRequest{})
			return err
		}, 1},
		{"version with room", Config{}, func(c pb.StorageServerClient) error {
			_, err := c.GetVersion(context.Background(), &pb.GetVersionRequest{})
			return err
		}, 0},
		{"bad request", Config{}, func(c pb.StorageServerClient) error {
			_, err := c.PutShares(context.Background(), putReq(idx[:3], 100, 0))
			return err
		}, 0},
		{"put that fits", Config{}, func(c pb.StorageServerClient) error {
			_, err := c.PutShares(context.Background(), putReq(idx, 100, 0))
			return err
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, srv := rawClient(t, tc.cfg)
			var n atomic.Int64
			srv.OnNoSpace(func() { n.Add(1) })
			err := tc.call(cl)
			if tc.want > 0 && err != nil && status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("call: %v", err)
			}
			if got := n.Load(); got != tc.want {
				t.Fatalf("OnNoSpace called %d times, want %d (call: %v)", got, tc.want, err)
			}
		})
	}
}
