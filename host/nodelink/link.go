package nodelink

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tarnfs/tarn/sdk/transport"
)

// ALPN is the application protocol both sides offer; a peer that offers
// another one is not a tarn node and the handshake fails.
const ALPN = "tarn/1"

// DefaultHandshakeTimeout bounds a TLS handshake when the caller's context
// has no earlier deadline (and always, on the server side).
const DefaultHandshakeTimeout = 10 * time.Second

// Sentinel errors callers branch on.
var (
	// ErrKeyMismatch: the server's key does not hash to the pin.
	ErrKeyMismatch = errors.New("server key does not match the pinned key hash")
	// ErrNoPeerCert: the peer presented no certificate.
	ErrNoPeerCert = errors.New("peer presented no certificate")
)

// ServerConfig returns the TLS configuration of a node that accepts links:
// TLS 1.3 only, a client certificate required (any key: the server learns
// who the client is; authorisation is a separate step).
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{ALPN},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoPeerCert
			}
			return nil
		},
	}
}

// ClientConfig returns the TLS configuration of a node dialing a server
// whose key must hash to pin. Chains and names are not checked: the pin is
// the whole of the server's authentication.
func ClientConfig(cert tls.Certificate, pin string) (*tls.Config, error) {
	want, err := decodeKeyHash(pin)
	if err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		NextProtos:         []string{ALPN},
		ServerName:         "tarn",
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoPeerCert
			}
			got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if string(got[:]) != string(want) {
				return fmt.Errorf("%w: expected %s, actual %s", ErrKeyMismatch, encodeKeyHash(want), encodeKeyHash(got[:]))
			}
			if cs.NegotiatedProtocol != ALPN {
				return fmt.Errorf("server did not agree to protocol %q", ALPN)
			}
			return nil
		},
	}, nil
}

// Listener accepts pinned-TLS links. Accept returns a *tls.Conn whose
// handshake has not run yet (it runs on first Read or Write, or call
// HandshakeContext); a slow client therefore never stalls Accept.
type Listener struct {
	net.Listener
	config *tls.Config
}

// Listen listens on the transport address addr and returns a listener of
// TLS links presenting cert.
func Listen(ctx context.Context, tr transport.Transport, addr string, cert tls.Certificate) (*Listener, error) {
	ln, err := tr.Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &Listener{Listener: ln, config: ServerConfig(cert)}, nil
}

// Accept waits for the next link.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.config), nil
}

// Dial connects to the node at addr (a node address string or Addr) over
// tr, trying its transport addresses in order, and returns the link once
// the handshake has verified the server's key against the pin. Each attempt
// is bounded by DefaultHandshakeTimeout unless ctx ends sooner.
func Dial(ctx context.Context, tr transport.Transport, addr string, cert tls.Certificate) (*tls.Conn, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	return DialAddr(ctx, tr, a, cert)
}

// DialAddr is Dial for a parsed address.
func DialAddr(ctx context.Context, tr transport.Transport, a Addr, cert tls.Certificate) (*tls.Conn, error) {
	cfg, err := ClientConfig(cert, a.KeyHash)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a, err)
	}
	var errs []string
	for _, ta := range a.Transports {
		c, err := dialOne(ctx, tr, ta, cfg)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrKeyMismatch) || ctx.Err() != nil {
			// A wrong key is not a reason to try the next address: the
			// address list is one node, and someone is in the way.
			return nil, fmt.Errorf("dial %s: %w", a, err)
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("dial %s: %s", a, strings.Join(errs, "; "))
}

func dialOne(ctx context.Context, tr transport.Transport, ta string, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	raw, err := tr.Dial(ctx, ta)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ta, err)
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("%s: tls handshake: %w", ta, err)
	}
	return c, nil
}

// PeerKeyHash returns the key hash of the peer of a handshaken link.
func PeerKeyHash(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", ErrNoPeerCert
	}
	return KeyHash(cs.PeerCertificates[0]), nil
}

// peerCert is a helper for tests and callers that hold a raw certificate.
func parseLeaf(cert tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("certificate is empty")
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// CertKeyHash returns the key hash (pin) of one's own certificate.
func CertKeyHash(cert tls.Certificate) (string, error) {
	leaf, err := parseLeaf(cert)
	if err != nil {
		return "", fmt.Errorf("parse certificate: %w", err)
	}
	return KeyHash(leaf), nil
}
