package nodelink

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
	ln, err := lc.Listen(ctx, "tcp", hp)
	if err != nil {
		return nil, err
	}
	return tcpListener{ln}, nil
}

type tcpListener struct{ net.Listener }

type tcpAddr struct{ net.Addr }

func (a tcpAddr) String() string { return "tcp:" + a.Addr.String() }

func (l tcpListener) Addr() net.Addr { return tcpAddr{l.Listener.Addr()} }

func (tcpTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	hp, ok := strings.CutPrefix(addr, "tcp:")
	if !ok {
		return nil, transport.ErrBadAddress
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", hp)
}

// newCert makes a self-signed Ed25519 node certificate, as host/identity does.
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
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
}

func pinOf(t testing.TB, c tls.Certificate) string {
	t.Helper()
	h, err := CertKeyHash(c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
