package grid_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
)

// oneCall is how the client logs a small upload that took the one-call
// path (PutShares), which the tests below count.
const oneCall = `path="one call"`

// TestSmallUploadOneCall: once the client has healthy links, a small file
// goes up with one PutShares per server, reads back, sits on H servers or
// more, and a convergent upload of it again stores nothing new.
func TestSmallUploadOneCall(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, logs := newClient(t, g, nil)
	upload(t, c, random(5000)) // dials every server (general path)
	if n := strings.Count(logs.String(), oneCall); n != 0 {
		t.Fatalf("the first upload of a fresh client took the one-call path (%d)", n)
	}
	data := random(5000)
	cp := upload(t, c, data)
	if n := strings.Count(logs.String(), oneCall); n != 1 {
		t.Fatalf("%d uploads took the one-call path, want 1\n%s", n, logs)
	}
	download(t, c, cp, data)
	servers := map[int]bool{}
	for _, srvs := range g.Holders(chkOf(t, cp).StorageIndex()) {
		for _, s := range srvs {
			servers[s] = true
		}
	}
	if len(servers) < 4 {
		t.Fatalf("shares on %d servers, want 4 or more", len(servers))
	}
	seals := g.Counts().Seals
	again := upload(t, c, data)
	if again.String() != cp.String() {
		t.Fatal("a convergent upload again gave another cap")
	}
	if n := strings.Count(logs.String(), oneCall); n != 2 {
		t.Fatalf("the upload again did not take the one-call path (%d)", n)
	}
	if s := g.Counts().Seals; s != seals {
		t.Fatalf("the upload again sealed %d shares, want none", s-seals)
	}
}

// TestSmallUploadFallback: when a server refuses the one-call path (no
// room, or it is stopped), the upload still succeeds by the general path,
// and nothing lands on the refusing server.
func TestSmallUploadFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		full bool // server 0 keeps a reserve larger than its space
		stop bool // server 0 stops after the client dialed it
	}{
		{"full server", true, false},
		{"stopped server", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, &testgrid.Options{Server: func(i int, cfg *storageserver.Config) {
				if i == 0 && tc.full {
					cfg.Reserved = 1 << 40
				}
			}})
			c, logs := newClient(t, g, nil)
			upload(t, c, random(5000))
			if tc.stop {
				g.Servers[0].Stop()
			}
			seals := g.Servers[0].Backend.Counts().Seals
			data := random(5000)
			cp := upload(t, c, data)
			download(t, c, cp, data)
			if s := g.Servers[0].Backend.Counts().Seals; s != seals {
				t.Fatalf("server 0 sealed %d shares", s-seals)
			}
			if tc.full && !strings.Contains(logs.String(), "one-call upload refused") {
				t.Fatalf("the full server did not refuse the one-call path\n%s", logs)
			}
		})
	}
}

// oldServer is a storage server from before PutShares.
type oldServer struct{ *storageserver.Server }

func (oldServer) PutShares(context.Context, *pb.PutSharesRequest) (*pb.PutSharesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method PutShares")
}

// TestSmallUploadOldServers: servers that predate PutShares get small
// files by the general path, and are asked for PutShares only once.
func TestSmallUploadOldServers(t *testing.T) {
	g := testgrid.New(t, 0, nil) // for its transport and client identity
	var src grid.StaticServers
	var olds []*storageserver.Server
	for range 5 {
		id, err := identity.Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := id.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		srv, err := storageserver.New(storageserver.Config{Backend: storagememory.New(), GridSecret: g.Secret})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := g.Transport.Listen(context.Background(), "tcp:127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := nodelink.NewServer(cert, srv.ServerOptions()...)
		pb.RegisterStorageServerServer(gs, oldServer{srv})
		go gs.Serve(ln)
		t.Cleanup(func() { gs.Stop(); srv.Close() })
		olds = append(olds, srv)
		src = append(src, grid.Server{NodeID: id.NodeID(), Addr: "tarn://" + id.KeyHash() + "@" + ln.Addr().String()})
	}
	logs := &syncBuffer{}
	c, err := grid.New(grid.Config{Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: src, K: 3, H: 4, N: 5, SegmentSize: seg,
		Convergence: []byte("c"), TempDir: t.TempDir(), ServerTimeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for i := range 4 {
		data := random(3000 + i)
		cp := upload(t, c, data)
		download(t, c, cp, data)
	}
	var sealed int64
	for _, s := range olds {
		sealed += s.Stats().Sealed
	}
	if sealed < 4*5 {
		t.Fatalf("old servers sealed %d shares for 4 files, want 20", sealed)
	}
	if n := strings.Count(logs.String(), "one-call upload refused"); n > 5 {
		t.Fatalf("old servers were asked for PutShares %d times, want at most once each", n)
	}
	if strings.Contains(logs.String(), oneCall) {
		t.Fatal("an upload to old servers claims the one-call path")
	}
}

// TestSmallUploadUnknownSize: a file of unknown size (a frontend's
// writer) that turns out small takes the one-call path too; one past the
// limit still goes up whole by the general path.
func TestSmallUploadUnknownSize(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c, logs := newClient(t, g, nil)
	upload(t, c, random(5000)) // dials every server
	for _, tc := range []struct {
		name    string
		size    int
		oneCall bool
	}{
		{"small", 7000, true},
		{"just past the limit", 1<<20 + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(logs.String(), oneCall)
			data := random(tc.size)
			cp, err := c.Upload(ctxFor(t, time.Minute), struct{ io.Reader }{bytes.NewReader(data)}, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			download(t, c, cp, data)
			if got := strings.Count(logs.String(), oneCall) - before; (got == 1) != tc.oneCall {
				t.Fatalf("%d one-call uploads, want one: %v", got, tc.oneCall)
			}
		})
	}
}
