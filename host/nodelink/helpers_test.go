package nodelink

import (
	"crypto/tls"
	"testing"

	"github.com/tarnfs/tarn/host/identity"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
)

// tcp is the built-in TCP transport, in process, over real sockets.
var tcp = transporttcp.New()

// newCert makes a node identity in a temporary folder and returns its
// certificate, as a node does at start.
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
	if pinOf(t, c) != id.KeyHash() {
		t.Fatalf("certificate pin %s differs from identity key hash %s", pinOf(t, c), id.KeyHash())
	}
	return c
}

func pinOf(t testing.TB, c tls.Certificate) string {
	t.Helper()
	h, err := CertKeyHash(c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
