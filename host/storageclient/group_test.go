package storageclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// slowBackend is the memory backend whose Put takes a while, as a disk
// backend's group-committed sync does.
type slowBackend struct {
	storage.Backend
	delay time.Duration
}

func (b slowBackend) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	time.Sleep(b.delay)
	return storage.Put(ctx, b.Backend, ref, data)
}

// noBatchServer is a storage server from before PutSharesBatch.
type noBatchServer struct{ *storageserver.Server }

func (noBatchServer) PutSharesBatch(context.Context, *pb.PutSharesBatchRequest) (*pb.PutSharesBatchResponse, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method PutSharesBatch for service tarn.storageserver.v1.StorageServer")
}

// groupedPut is one put of TestPutSharesGrouped and what it should get.
type groupedPut struct {
	idx    [storage.StorageIndexSize]byte
	shares map[uint32][]byte
	lease  []byte
	leave  bool // its caller gives up while it waits
	r      *PutResult
	err    error
}

// TestPutSharesGrouped: puts made while one is in flight go together in
// one PutSharesBatch (fewer calls than puts), each answered with its own
// outcome (a put the server refuses fails alone, the others are stored
// and read back), a caller that gives up while its put waits returns at
// once; a server that predates the batch call gets every put as a
// PutShares, and they are stored all the same.
func TestPutSharesGrouped(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old server %v", old), func(t *testing.T) {
			ctx := testCtx(t)
			secret := randBytes(32)
			srv, err := storageserver.New(storageserver.Config{Backend: slowBackend{storagememory.New(), 30 * time.Millisecond}, GridSecret: secret})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tcp.Listen(ctx, "tcp:127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cert := newCert(t)
			g := nodelink.NewServer(cert, srv.ServerOptions()...)
			if old {
				pb.RegisterStorageServerServer(g, noBatchServer{srv})
			} else {
				pb.RegisterStorageServerServer(g, srv)
			}
			go g.Serve(ln)
			t.Cleanup(func() { g.Stop(); srv.Close() })
			ts := &testServer{addr: "tarn://" + pinOf(t, cert) + "@" + ln.Addr().String(), cert: cert, srv: srv}
			c := ts.dial(t, secret, Options{})

			puts := make([]*groupedPut, 12)
			for i := range puts {
				puts[i] = &groupedPut{idx: randIndex(), shares: map[uint32][]byte{0: randBytes(100), 3: randBytes(100)}, lease: randBytes(32)}
			}
			puts[5].lease = randBytes(5) // refused by the server: a bad lease secret
			puts[7].leave = true
			run := func(p *groupedPut) {
				pctx := ctx
				if p.leave {
					var cancel context.CancelFunc
					pctx, cancel = context.WithTimeout(ctx, 5*time.Millisecond)
					defer cancel()
				}
				p.r, p.err = c.PutSharesGrouped(pctx, p.idx, 100, p.shares, p.lease)
			}
			first := make(chan struct{})
			go func() { run(puts[0]); close(first) }()
			time.Sleep(10 * time.Millisecond) // puts[0] is in flight
			var wg sync.WaitGroup
			start := time.Now()
			for _, p := range puts[1:] {
				wg.Add(1)
				go func() { defer wg.Done(); run(p) }()
			}
			wg.Wait()
			<-first
			for i, p := range puts {
				switch {
				case i == 5:
					if p.err == nil || !strings.Contains(p.err.Error(), "lease secret") {
						t.Fatalf("put %d with a bad lease secret: %v, want a refusal naming it", i, p.err)
					}
				case p.leave:
					if !errors.Is(p.err, context.DeadlineExceeded) {
						t.Fatalf("put %d whose caller left: %v, want DeadlineExceeded", i, p.err)
					}
				default:
					if p.err != nil || fmt.Sprint(p.r.Stored) != "[0 3]" {
						t.Fatalf("put %d: %+v %v", i, p.r, p.err)
					}
					for n, want := range p.shares {
						got, err := c.Read(ctx, p.idx, n, 0, 100)
						if err != nil || !bytes.Equal(got, want) {
							t.Fatalf("put %d share %d reads back wrong: %v", i, n, err)
						}
					}
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("the puts took %v", d)
			}
			calls, carried := c.PutBatches()
			t.Logf("%d batch calls carried %d puts", calls, carried)
			if old {
				if calls != 0 || !c.group.noBatch.Load() {
					t.Fatalf("old server: %d batch calls, no-batch %v", calls, c.group.noBatch.Load())
				}
			} else if calls < 1 || carried < 2*calls {
				t.Fatalf("%d batch calls carried %d puts: want batches of two or more", calls, carried)
			}
		})
	}
}

// blockingBackend holds the Put of every index in block until the put's
// context ends.
type blockingBackend struct {
	storage.Backend
	block map[[storage.StorageIndexSize]byte]bool
}

func (b blockingBackend) Put(ctx context.Context, ref storage.Ref, data []byte) error {
	if b.block[ref.Index] {
		<-ctx.Done()
		return ctx.Err()
	}
	return storage.Put(ctx, b.Backend, ref, data)
}

// TestPutSharesGroupedCallersLeave: a batch that hangs on the server is
// given up once every caller in it has left, so a put queued behind it
// goes next instead of waiting for the batch's deadline.
func TestPutSharesGroupedCallersLeave(t *testing.T) {
	ctx := testCtx(t)
	hung := []([storage.StorageIndexSize]byte){randIndex(), randIndex(), randIndex()}
	block := map[[storage.StorageIndexSize]byte]bool{}
	for _, idx := range hung {
		block[idx] = true
	}
	slow := randIndex()
	ts := startServer(t, storageserver.Config{Backend: slowBackend{blockingBackend{storagememory.New(), block}, 0}}, false)
	c := ts.dial(t, ts.secret, Options{CallTimeout: time.Minute})
	put := func(ctx context.Context, idx [storage.StorageIndexSize]byte) error {
		_, err := c.PutSharesGrouped(ctx, idx, 10, map[uint32][]byte{0: randBytes(10)}, randBytes(32))
		return err
	}
	// One put in flight (it hangs until its caller leaves at 300 ms), the
	// hung ones queue behind it and go as one batch, whose callers leave
	// at 600 ms; then a put with a long deadline.
	go func() {
		hctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		put(hctx, hung[0])
	}()
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	for _, idx := range hung[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A long deadline, but the caller gives up at 600 ms (as
			// the grid does with a server that hangs).
			hctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			time.AfterFunc(600*time.Millisecond, cancel)
			if err := put(hctx, idx); !errors.Is(err, context.Canceled) {
				t.Errorf("hung put: %v, want Canceled", err)
			}
		}()
	}
	time.Sleep(400 * time.Millisecond) // the batch of the hung ones is in flight
	start := time.Now()
	if err := put(ctx, slow); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the put behind a hung batch took %v (the batch was not given up with its callers)", d)
	}
}
