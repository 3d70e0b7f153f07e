package storageclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPutShares: shares put in one call read back; a second put answers
// them as held; a full server says ErrNoSpace; sizes that do not match
// are refused before anything is sent.
func TestPutShares(t *testing.T) {
	ctx := testCtx(t)
	ts := startServer(t, storageserver.Config{Backend: storagememory.NewLimit(10 << 10)}, false)
	c := ts.dial(t, ts.secret, Options{})
	idx := randIndex()
	lease := randBytes(32)
	shares := map[uint32][]byte{0: randBytes(2000), 4: randBytes(2000)}
	r, err := c.PutShares(ctx, idx, 2000, shares, lease)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Stored, r.AlreadyHave, r.InProgress) != "[0 4] [] []" {
		t.Fatalf("put answered %+v", r)
	}
	for n, want := range shares {
		got, err := c.Read(ctx, idx, n, 0, 2000)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("share %d reads back wrong: %v", n, err)
		}
	}
	r, err = c.PutShares(ctx, idx, 2000, shares, lease)
	if err != nil || fmt.Sprint(r.Stored, r.AlreadyHave) != "[] [0 4]" {
		t.Fatalf("second put: %+v %v, want both held", r, err)
	}
	_, err = c.PutShares(ctx, randIndex(), 4000, map[uint32][]byte{1: randBytes(4000), 2: randBytes(4000)}, lease)
	if !errors.Is(err, storage.ErrNoSpace) {
		t.Fatalf("put on a full server: %v, want ErrNoSpace", err)
	}
	for _, tc := range []struct {
		name   string
		size   int64
		shares map[uint32][]byte
	}{
		{"wrong length", 10, map[uint32][]byte{1: make([]byte, 9)}},
		{"too big for one call", 600 << 10, map[uint32][]byte{1: make([]byte, 600<<10), 2: make([]byte, 600<<10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutShares(ctx, idx, tc.size, tc.shares, lease)
			if !errors.Is(err, storage.ErrRange) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("put: %v, want one line wrapping ErrRange", err)
			}
		})
	}
}

// oldServer is a storage server from before PutShares.
type oldServer struct{ *storageserver.Server }

func (oldServer) PutShares(context.Context, *pb.PutSharesRequest) (*pb.PutSharesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method PutShares for service tarn.storageserver.v1.StorageServer")
}

// TestPutSharesOldServer: a server that predates PutShares gives an error
// wrapping errors.ErrUnsupported, and Allocate still works there.
func TestPutSharesOldServer(t *testing.T) {
	ctx := testCtx(t)
	srv, err := storageserver.New(storageserver.Config{Backend: storagememory.New()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tcp.Listen(ctx, "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert := newCert(t)
	g := nodelink.NewServer(cert, srv.ServerOptions()...)
	pb.RegisterStorageServerServer(g, oldServer{srv})
	go g.Serve(ln)
	t.Cleanup(func() { g.Stop(); srv.Close() })
	ts := &testServer{addr: "tarn://" + pinOf(t, cert) + "@" + ln.Addr().String(), cert: cert, srv: srv}
	c := ts.dial(t, nil, Options{})
	idx := randIndex()
	_, err = c.PutShares(ctx, idx, 10, map[uint32][]byte{0: make([]byte, 10)}, randBytes(32))
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("put on an old server: %v, want ErrUnsupported", err)
	}
	a, err := c.Allocate(ctx, idx, []uint32{0}, 10, randBytes(32))
	if err != nil || len(a.Writers) != 1 {
		t.Fatalf("allocate on the old server after the refusal: %v %v", a, err)
	}
}
