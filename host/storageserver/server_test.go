package storageserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
	"github.com/tarnfs/tarn/sdk/storage"
)

// rawClient starts a server over real TLS and sockets and returns a raw
// protocol client of a grid member.
func rawClient(t *testing.T, cfg Config) (pb.StorageServerClient, *Server) {
	t.Helper()
	tcp := transporttcp.New()
	secret := make([]byte, 32)
	rand.Read(secret)
	cfg.GridSecret = secret
	if cfg.Backend == nil {
		cfg.Backend = storagememory.New()
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := identity.Create(t.TempDir())
	scert, _ := sid.TLSCertificate()
	ln, err := tcp.Listen(context.Background(), "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := srv.NewGRPCServer(scert)
	go g.Serve(ln)
	t.Cleanup(func() { g.Stop(); srv.Close() })

	cid, _ := identity.Create(t.TempDir())
	ccert, _ := cid.TLSCertificate()
	proof, err := nodelink.GridProof(secret, ccert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := nodelink.DialGRPC(ctx, tcp, "tarn://"+sid.KeyHash()+"@"+ln.Addr().String(), ccert, grpc.WithPerRPCCredentials(proof))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewStorageServerClient(cc), srv
}

func TestBadRequests(t *testing.T) {
	c, _ := rawClient(t, Config{MaxShareSize: 1000})
	idx := make([]byte, 16)
	lease := make([]byte, 32)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name    string
		call    func() error
		code    codes.Code
		errPart string
	}{
		{"short index", func() error {
			_, err := c.ListShares(ctx, &pb.ListSharesRequest{StorageIndex: idx[:5]})
			return err
		}, codes.InvalidArgument, "storage index is 5 bytes"},
		{"no shares", func() error {
			_, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareSize: 1, LeaseSecret: lease})
			return err
		}, codes.InvalidArgument, "0 share numbers"},
		{"duplicate share", func() error {
			_, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{2, 2}, ShareSize: 1, LeaseSecret: lease})
			return err
		}, codes.InvalidArgument, "given twice"},
		{"share number too big", func() error {
			_, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{256}, ShareSize: 1, LeaseSecret: lease})
			return err
		}, codes.InvalidArgument, "share number 256"},
		{"share too big", func() error {
			_, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{0}, ShareSize: 1001, LeaseSecret: lease})
			return err
		}, codes.InvalidArgument, "share size 1001"},
		{"negative share size", func() error {
			_, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{0}, ShareSize: -1, LeaseSecret: lease})
			return err
		}, codes.InvalidArgument, "share size -1"},
		{"no lease secret", func() error {
			_, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: idx, ShareNums: []uint32{0}, ShareSize: 1})
			return err
		}, codes.InvalidArgument, "lease secret is 0 bytes"},
		{"unknown handle", func() error {
			_, err := c.Seal(ctx, &pb.SealRequest{Handle: make([]byte, 16)})
			return err
		}, codes.FailedPrecondition, "unknown, sealed, aborted"},
		{"short handle", func() error {
			_, err := c.Abort(ctx, &pb.AbortRequest{Handle: []byte{1}})
			return err
		}, codes.InvalidArgument, "handle is 1 bytes"},
		{"read missing share", func() error {
			s, err := c.ReadShare(ctx, &pb.ReadShareRequest{StorageIndex: idx, Ranges: []*pb.ByteRange{{Offset: 0, Length: 1}}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.NotFound, "not found"},
		{"negative range", func() error {
			s, err := c.ReadShare(ctx, &pb.ReadShareRequest{StorageIndex: idx, Ranges: []*pb.ByteRange{{Offset: -1, Length: 1}}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, "range 0"},
		{"too many ranges", func() error {
			s, err := c.ReadShare(ctx, &pb.ReadShareRequest{StorageIndex: idx, Ranges: make([]*pb.ByteRange, MaxRanges+1)})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, "ranges, limit"},
		{"renew nothing", func() error {
			_, err := c.RenewLease(ctx, &pb.RenewLeaseRequest{StorageIndex: idx, LeaseSecret: lease})
			return err
		}, codes.NotFound, "no shares here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.errPart)
			}
		})
	}
}

func TestWriteBounds(t *testing.T) {
	c, srv := rawClient(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := c.Allocate(ctx, &pb.AllocateRequest{StorageIndex: make([]byte, 16), ShareNums: []uint32{0}, ShareSize: 10, LeaseSecret: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Allocated[0].Handle
	tests := []struct {
		name string
		off  int64
		n    int
		code codes.Code
	}{
		{"past the end", 5, 6, codes.OutOfRange},
		{"negative offset", -1, 1, codes.OutOfRange},
		{"oversized chunk", 0, MaxChunk + 1, codes.InvalidArgument},
		{"over the message limit", 0, 3 << 20, codes.ResourceExhausted}, // gRPC's own limit
		{"fits", 0, 10, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.WriteShare(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Send(&pb.WriteShareRequest{Handle: h, Offset: tc.off, Data: make([]byte, tc.n)})
			_, err = s.CloseAndRecv()
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
		})
	}
	if _, err := c.Seal(ctx, &pb.SealRequest{Handle: h}); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Sealed != 1 || st.OpenUploads != 0 || st.OpenBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no backend", Config{}, "no backend"},
		{"short secret", Config{Backend: storagememory.New(), GridSecret: []byte("x")}, "grid secret is 1 bytes"},
		{"negative reserve", Config{Backend: storagememory.New(), Reserved: -1}, "negative reserved"},
		{"bad lease path", Config{Backend: storagememory.New(), LeasePath: "/nonexistent/dir/leases.db"}, "open lease db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateSlotWrite(t *testing.T) {
	var seen [][2]string
	c, _ := rawClient(t, Config{ValidateSlotWrite: func(_ context.Context, _ storage.Ref, cur, next []byte) error {
		seen = append(seen, [2]string{string(cur), string(next)})
		if strings.HasPrefix(string(next), "bad") {
			return errors.New("signature does not verify")
		}
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := func(expect, v string) *pb.WriteSlotRequest {
		return &pb.WriteSlotRequest{StorageIndex: make([]byte, 16), SlotNum: 1, ExpectToken: expect, Value: []byte(v), LeaseSecret: make([]byte, 32)}
	}
	r1, err := c.WriteSlot(ctx, req("", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WriteSlot(ctx, req(r1.Token, "bad v2"))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("bad write: %v, want PermissionDenied with the reason", err)
	}
	if _, err := c.WriteSlot(ctx, req("stale", "v2")); status.Code(err) != codes.Aborted {
		t.Fatalf("stale token: %v, want Aborted", err)
	}
	if _, err := c.WriteSlot(ctx, req(r1.Token, "v2")); err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"", "v1"}, {"v1", "bad v2"}, {"v1", "v2"}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("validator saw %q, want %q", seen, want)
	}
}

func TestSharedGRPCServer(t *testing.T) {
	// Another service on the same gRPC server is not gated by the storage
	// service's membership check; the storage service still is.
	tcp := transporttcp.New()
	secret := make([]byte, 32)
	rand.Read(secret)
	srv, err := New(Config{Backend: storagememory.New(), GridSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := identity.Create(t.TempDir())
	scert, _ := sid.TLSCertificate()
	g := nodelink.NewServer(scert, srv.ServerOptions()...)
	srv.Register(g)
	healthpb.RegisterHealthServer(g, health.NewServer())
	ln, err := tcp.Listen(context.Background(), "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(func() { g.Stop(); srv.Close() })

	cid, _ := identity.Create(t.TempDir())
	ccert, _ := cid.TLSCertificate()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := nodelink.DialGRPC(ctx, tcp, "tarn://"+sid.KeyHash()+"@"+ln.Addr().String(), ccert)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("other service: %v", err)
	}
	_, err = pb.NewStorageServerClient(cc).ListShares(ctx, &pb.ListSharesRequest{StorageIndex: make([]byte, 16)})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("storage without proof: %v, want PermissionDenied", err)
	}
}
