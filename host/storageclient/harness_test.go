package storageclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/transport"
)

// tcpTransport is a test-only transport over real TCP sockets.
type tcpTransport struct{}

var _ transport.Transport = tcpTransport{}

func (tcpTransport) Info(context.Context) (transport.Info, error) {
	return transport.Info{Name: "tcp-test", Schemes: []string{"tcp"}}, nil
}

func (tcpTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	hp, ok := strings.CutPrefix(addr, "tcp:")
	if !ok {
		return nil, transport.ErrBadAddress
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", hp)
}

func (tcpTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	hp, ok := strings.CutPrefix(addr, "tcp:")
	if !ok {
		return nil, transport.ErrBadAddress
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", hp)
}

func newCert(t testing.TB) tls.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tarn node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
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
func startServer(t *testing.T, cfg storageserver.Config, open bool) *testServer {
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
	ln, err := tcpTransport{}.Listen(context.Background(), "tcp:127.0.0.1:0")
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
		addr:   "tarn://" + pinOf(t, cert) + "@tcp:" + ln.Addr().String(),
		cert:   cert,
		srv:    srv,
		secret: cfg.GridSecret,
	}
}

func (ts *testServer) dial(t *testing.T, secret []byte, opts Options) *Client {
	t.Helper()
	opts.GridSecret = secret
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, tcpTransport{}, ts.addr, newCert(t), opts)
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
