package transporttest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/transport"
)

// selfSigned makes a throwaway Ed25519 certificate and its SPKI hash.
func selfSigned(t *testing.T) (tls.Certificate, [32]byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
}

// pinned verifies the peer by the SHA-256 of its public key only, as the
// host does with the hash carried in a server's address.
func pinned(want [32]byte) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("no peer certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if sha256.Sum256(c.RawSubjectPublicKeyInfo) != want {
			return errors.New("peer key does not match its pin")
		}
		return nil
	}
}

// testTLS runs TLS 1.3 with pinned keys over the transport's connections,
// as the host always does: a matching pin carries data both ways, another
// pin is refused.
func testTLS(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	serverCert, serverPin := selfSigned(t)
	clientCert, clientPin := selfSigned(t)
	_, otherPin := selfSigned(t)
	for _, tc := range []struct {
		name string
		pin  [32]byte
		ok   bool
	}{{"pinned key", serverPin, true}, {"other key", otherPin, false}} {
		t.Run(tc.name, func(t *testing.T) {
			d, a := mustPair(t, tr, ln)
			deadline := time.Now().Add(30 * time.Second)
			d.SetDeadline(deadline)
			a.SetDeadline(deadline)
			srv := tls.Server(a, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{serverCert},
				ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: pinned(clientPin)})
			cli := tls.Client(d, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{clientCert},
				InsecureSkipVerify: true, VerifyPeerCertificate: pinned(tc.pin)})
			want := random(t, 1<<20)
			srvErr := make(chan error, 1)
			go func() {
				if err := srv.Handshake(); err != nil {
					srvErr <- err
					return
				}
				_, err := io.Copy(srv, io.LimitReader(srv, int64(len(want))))
				srvErr <- err
			}()
			err := cli.Handshake()
			if !tc.ok {
				if err == nil {
					t.Fatal("handshake with a wrong pin succeeded")
				}
				a.Close()
				<-srvErr
				return
			}
			if err != nil {
				t.Fatalf("tls handshake: %v", err)
			}
			go cli.Write(want)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(cli, got); err != nil {
				t.Fatalf("read echo over tls: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("echo over tls differs")
			}
			if err := <-srvErr; err != nil {
				t.Fatalf("tls server: %v", err)
			}
		})
	}
}
