// Package transporttcp is tarn's built-in transport: plain TCP, addressed
// as "tcp:HOST:PORT" where HOST is a DNS name, an IPv4 address or a
// bracketed IPv6 address ("tcp:[::1]:3456"). The host runs TLS with a
// pinned key over whatever it dials, so this transport adds no security of
// its own.
//
// As a plugin it hands every connected socket to the host (the fast path of
// sdk/transport), so the host does its I/O without a copy through the
// plugin.
package transporttcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tarnfs/tarn/sdk/transport"
)

// Scheme is the address prefix this transport handles.
const Scheme = "tcp"

// Version is this transport's version, reported by Info.
const Version = "1.0.0"

// maxAddrLen bounds an address: a DNS name is at most 253 bytes.
const maxAddrLen = 4 + 255 + 2 + 6

// Transport is plain TCP.
type Transport struct {
	dialer net.Dialer
	lc     net.ListenConfig
}

var _ transport.Transport = (*Transport)(nil)

// New returns the TCP transport.
func New() transport.Transport { return &Transport{} }

// Serve runs the TCP transport as a plugin process until the host goes
// away. It is what "tarn plugin serve transport tcp" calls.
func Serve() { transport.Serve(New()) }

func (t *Transport) Info(context.Context) (transport.Info, error) {
	return transport.Info{Name: "tcp", Version: Version, Schemes: []string{Scheme}}, nil
}

// Addr is a parsed "tcp:HOST:PORT" address.
type Addr struct {
	Host string // a name, an IP address, or "" for every interface (Listen only)
	Port uint16
}

// String gives the address in the transport's syntax, IPv6 bracketed.
func (a Addr) String() string {
	return Scheme + ":" + net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port)))
}

func badAddr(addr, why string) error {
	if len(addr) > 64 {
		addr = addr[:64] + "..."
	}
	return fmt.Errorf("tcp address %q: %s: %w", addr, why, transport.ErrBadAddress)
}

// ParseAddr parses "tcp:HOST:PORT". HOST may be empty (every interface),
// which only Listen accepts; the errors wrap transport.ErrBadAddress.
func ParseAddr(addr string) (Addr, error) {
	if len(addr) > maxAddrLen {
		return Addr{}, badAddr(addr, "too long")
	}
	rest, ok := strings.CutPrefix(addr, Scheme+":")
	if !ok {
		return Addr{}, badAddr(addr, `does not start with "tcp:"`)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return Addr{}, badAddr(addr, "want HOST:PORT with an IPv6 host in brackets")
	}
	if strings.HasPrefix(rest, "[") != strings.Contains(host, ":") {
		// "[name]:1" and unbracketed IPv6 are both refused.
		return Addr{}, badAddr(addr, "only an IPv6 host goes in brackets")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || port == "" || port[0] == '+' {
		return Addr{}, badAddr(addr, fmt.Sprintf("port %q is not a number from 0 to 65535", port))
	}
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return Addr{}, badAddr(addr, fmt.Sprintf("%q is not an IPv6 address", host))
		}
	} else if host != "" && !validName(host) {
		return Addr{}, badAddr(addr, fmt.Sprintf("%q is not a host name or IPv4 address", host))
	}
	return Addr{Host: host, Port: uint16(p)}, nil
}

// validName accepts DNS names and IPv4 addresses: labels of letters,
// digits, '-' and '_', separated by single dots.
func validName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			default:
				return false
			}
		}
	}
	return true
}

func (t *Transport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := t.lc.Listen(ctx, "tcp", net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))))
	if err != nil {
		return nil, err // net's error names the address; callers name addr
	}
	ta := ln.Addr().(*net.TCPAddr)
	return &listener{Listener: ln, addr: transport.Addr{Net: Scheme, Str: tcpAddr(ta).String()}}, nil
}

func tcpAddr(ta *net.TCPAddr) Addr {
	ip, _ := netip.AddrFromSlice(ta.IP)
	return Addr{Host: ip.Unmap().WithZone(ta.Zone).String(), Port: uint16(ta.Port)}
}

func (t *Transport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if a.Host == "" {
		return nil, badAddr(addr, "dial needs a host")
	}
	c, err := t.dialer.DialContext(ctx, "tcp", net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))))
	if err != nil {
		// The host names the call and the address ("dial tcp:H:P: ..."),
		// as net's *OpError does ("dial tcp H:P: ..."): only the cause is
		// left to say, or an operator reads the address three times.
		if op, ok := err.(*net.OpError); ok && op.Err != nil {
			return nil, op.Err
		}
		return nil, err
	}
	return c, nil
}

// listener is a TCP listener whose Addr is in the "tcp:" syntax. Accept
// returns *net.TCPConn, so the plugin can hand the socket over.
type listener struct {
	net.Listener
	addr transport.Addr
}

func (l *listener) Addr() net.Addr { return l.addr }
