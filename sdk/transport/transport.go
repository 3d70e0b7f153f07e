// Package transport is the transport plugin contract: how nodes reach one
// another. A transport listens on and dials addresses of its own syntax
// ("tcp:host:port" for the built-in one); the host always runs TLS with a
// pinned peer key on top, so a transport never has to be trusted.
//
// It holds the Go interface, the gRPC protocol tarn.transport.v1, Serve for
// a plugin's main and the host-side client. On the fast path the plugin
// hands the host each connected socket (SCM_RIGHTS) and the host does I/O on
// it directly; the fallback carries the bytes over a gRPC stream.
package transport

import (
	"context"
	"errors"
	"net"
	"strings"
)

// ProtocolVersion is the major version of the transport contract.
const ProtocolVersion = 1

// ErrBadAddress is returned for an address the transport cannot parse.
var ErrBadAddress = errors.New("transport: bad address")

// Info describes a transport implementation.
type Info struct {
	Name    string
	Version string
	// Schemes are the address prefixes it handles, without the colon
	// (e.g. "tcp"). The host routes an address to the transport whose
	// scheme is its prefix.
	Schemes []string
}

// Transport is implemented by every transport plugin.
type Transport interface {
	Info(ctx context.Context) (Info, error)
	// Listen starts listening on addr. The listener's Addr().String() is the
	// address in the transport's own syntax that peers should dial (with a
	// port chosen by the system filled in when addr asked for port 0).
	Listen(ctx context.Context, addr string) (net.Listener, error)
	// Dial connects to addr.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// Scheme returns the prefix of an address ("tcp" of "tcp:host:port").
func Scheme(addr string) (string, error) {
	i := strings.IndexByte(addr, ':')
	if i <= 0 {
		return "", ErrBadAddress
	}
	return addr[:i], nil
}
