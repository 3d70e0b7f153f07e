package nodelink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/tarnfs/tarn/sdk/transport"
)

// Keepalive settings shared by both ends, so the server never takes a
// client's pings for abuse: a dead peer is noticed within about 40 s.
const (
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
)

// linkCreds implements credentials.TransportCredentials with the pinned
// handshake, so gRPC runs over the raw transport connection and exposes the
// TLS state to handlers as credentials.TLSInfo.
type linkCreds struct {
	cert tls.Certificate
	pin  string // client side only

	mu      sync.Mutex
	lastErr error // the last client handshake failure, for DialGRPC's error
}

var _ credentials.TransportCredentials = (*linkCreds)(nil)

// ServerCredentials returns gRPC transport credentials for a node that
// accepts pinned-TLS links with cert.
func ServerCredentials(cert tls.Certificate) credentials.TransportCredentials {
	return &linkCreds{cert: cert}
}

// ClientCredentials returns gRPC transport credentials that present cert
// and accept only a server whose key hashes to pin.
func ClientCredentials(cert tls.Certificate, pin string) (credentials.TransportCredentials, error) {
	if _, err := decodeKeyHash(pin); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	return &linkCreds{cert: cert, pin: pin}, nil
}

func (c *linkCreds) ClientHandshake(ctx context.Context, _ string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg, err := ClientConfig(c.cert, c.pin)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		err = fmt.Errorf("tls handshake with %s: %w", raw.RemoteAddr(), err)
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		return nil, nil, err
	}
	return tc, newLinkInfo(tc), nil
}

func (c *linkCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// No context here: a deadline on the raw conn stops a client that
	// connects and says nothing.
	if err := raw.SetDeadline(time.Now().Add(DefaultHandshakeTimeout)); err != nil {
		return nil, nil, err
	}
	tc := tls.Server(raw, ServerConfig(c.cert))
	if err := tc.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("tls handshake with %s: %w", raw.RemoteAddr(), err)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	return tc, newLinkInfo(tc), nil
}

func tlsInfo(tc *tls.Conn) credentials.TLSInfo {
	return credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}
}

func (c *linkCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3", ServerName: "tarn"}
}

func (c *linkCreds) Clone() credentials.TransportCredentials {
	return &linkCreds{cert: c.cert, pin: c.pin}
}

func (c *linkCreds) OverrideServerName(string) error { return nil }

func (c *linkCreds) takeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// NewServer returns a gRPC server whose connections are pinned-TLS links
// presenting cert. Feed it the raw transport listener:
//
//	ln, _ := tr.Listen(ctx, "tcp:0.0.0.0:4410")
//	srv := nodelink.NewServer(cert)
//	pb.RegisterXServer(srv, impl)
//	go srv.Serve(ln)
//
// Handlers learn the client's key with PeerKeyHashFromContext.
func NewServer(cert tls.Certificate, opts ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{
		grpc.Creds(ServerCredentials(cert)),
		grpc.ConnectionTimeout(DefaultHandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 3, PermitWithoutStream: true}),
	}
	return grpc.NewServer(append(base, opts...)...)
}

// DialGRPC connects to the node at addr over tr and returns a gRPC client
// connection whose links are pinned to the address's key hash. It waits
// until the first link is up, so a wrong key or an unreachable node is
// reported here (ErrKeyMismatch is kept in the chain). Later reconnects use
// the same transport addresses, in order.
func DialGRPC(ctx context.Context, tr transport.Transport, addr string, cert tls.Certificate, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	creds, err := ClientCredentials(cert, a.KeyHash)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a, err)
	}
	lc := creds.(*linkCreds)
	var dialMu sync.Mutex
	var dialErr error
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var errs []string
		for _, ta := range a.Transports {
			c, err := tr.Dial(ctx, ta)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err.Error()) // the transport names ta
			if ctx.Err() != nil {
				break
			}
		}
		err := errors.New(strings.Join(errs, "; "))
		dialMu.Lock()
		dialErr = err
		dialMu.Unlock()
		return nil, err
	}
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dialer),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
	}
	cc, err := grpc.NewClient("passthrough:///tarn-node", append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a, err)
	}
	cc.Connect()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return cc, nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			cc.Close()
			if err := lc.takeErr(); err != nil {
				return nil, fmt.Errorf("dial %s: %w", a, err)
			}
			dialMu.Lock()
			err := dialErr
			dialMu.Unlock()
			if err == nil {
				return nil, fmt.Errorf("dial %s: connection failed", a)
			}
			// The transport's error names each address it dialled; the
			// node address would name them again.
			return nil, err
		}
		if !cc.WaitForStateChange(ctx, s) {
			cc.Close()
			if err := lc.takeErr(); err != nil {
				return nil, fmt.Errorf("dial %s: %w", a, err)
			}
			return nil, fmt.Errorf("dial %s: %w", a, ctx.Err())
		}
	}
}

// PeerTLS returns the TLS state of the link an RPC arrived on.
func PeerTLS(ctx context.Context) (tls.ConnectionState, error) {
	_, cs, err := peerLink(ctx)
	return cs, err
}

// PeerKeyHashFromContext returns the key hash of the node that sent an RPC
// (computed once per link).
func PeerKeyHashFromContext(ctx context.Context) (string, error) {
	l, cs, err := peerLink(ctx)
	if err != nil {
		return "", err
	}
	if l != nil {
		return l.peerKeyHash()
	}
	return PeerKeyHash(cs)
}
