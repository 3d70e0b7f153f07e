package storageclient

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
	"github.com/tarnfs/tarn/sdk/storage"
)

// tcp is the built-in TCP transport, in process, over real sockets.
var tcp = transporttcp.New()

// newCert makes a node identity in a temporary folder and returns its
// certificate.
func newCert(t testing.TB) tls.Certificate {
	t.Helper()
	id, err := identity.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := id.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pinOf(t testing.TB, c tls.Certificate) string {
	t.Helper()
	h, err := nodelink.CertKeyHash(c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type testServer struct {
	addr   string // node address
	cert   tls.Certificate
	srv    *storageserver.Server
	secret []byte
}

// startServer runs a storage server on a real loopback socket. A nil
// Backend gets a memory backend; a nil GridSecret gets a fresh secret
// (set open to run without one).
func startServer(t testing.TB, cfg storageserver.Config, open bool) *testServer {
	t.Helper()
	if cfg.Backend == nil {
		cfg.Backend = storagememory.New()
	}
	if cfg.GridSecret == nil && !open {
		cfg.GridSecret = randBytes(32)
	}
	srv, err := storageserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tcp.Listen(context.Background(), "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert := newCert(t)
	g := srv.NewGRPCServer(cert)
	go g.Serve(ln)
	t.Cleanup(func() {
		g.Stop()
		srv.Close()
	})
	return &testServer{
		addr:   "tarn://" + pinOf(t, cert) + "@" + ln.Addr().String(),
		cert:   cert,
		srv:    srv,
		secret: cfg.GridSecret,
	}
}

func (ts *testServer) dial(t testing.TB, secret []byte, opts Options) *Client {
	t.Helper()
	opts.GridSecret = secret
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, tcp, ts.addr, newCert(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randIndex() [storage.StorageIndexSize]byte {
	return [storage.StorageIndexSize]byte(randBytes(storage.StorageIndexSize))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
