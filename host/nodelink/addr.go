// Package nodelink is tarn's node-to-node link: TLS 1.3 with pinned keys
// over any transport, and gRPC on top of it.
//
// Every node has a long-lived key. A node's address carries the hash of that
// key's SubjectPublicKeyInfo (the pin) beside the transport addresses where
// the node listens:
//
//	tarn://<keyhash>@<transport-address>[,<transport-address>...]
//	tarn://ryw3...q@tcp:127.0.0.1:4410,tor:abc.onion:4410
//
// A dialer refuses a server whose key does not hash to the pin, so neither
// the transport nor the network has to be trusted. The server asks every
// client for its certificate too, so it learns the client's node key; grid
// membership (who may write) is proved on top of that by an HMAC bound to
// the TLS session (see membership.go and docs/protocol.md).
package nodelink

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/tarnfs/tarn/sdk/transport"
)

// Scheme is the prefix of a node address.
const Scheme = "tarn://"

// MaxAddrLen bounds the length of a node address accepted by ParseAddr.
const MaxAddrLen = 4096

// ErrBadAddr is wrapped by every ParseAddr error.
var ErrBadAddr = errors.New("bad node address")

// keyEncoding is RFC 4648 base32, lower case, without padding: 52
// characters for a SHA-256.
var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Addr is a parsed node address: the pin and where to reach the node.
type Addr struct {
	// KeyHash is the pin: base32 (lower case, unpadded) of the SHA-256 of
	// the node certificate's SubjectPublicKeyInfo.
	KeyHash string
	// Transports are transport addresses ("tcp:host:port"), tried in order.
	Transports []string
}

// String renders the address in its canonical form.
func (a Addr) String() string {
	return Scheme + a.KeyHash + "@" + strings.Join(a.Transports, ",")
}

// ParseAddr parses a node address. The key hash is accepted in either case
// and with or without padding and is returned in canonical (lower case,
// unpadded) form.
func ParseAddr(s string) (Addr, error) {
	bad := func(format string, args ...any) (Addr, error) {
		return Addr{}, fmt.Errorf("%w %s: %s", ErrBadAddr, quoteShort(s), fmt.Sprintf(format, args...))
	}
	if len(s) > MaxAddrLen {
		return bad("longer than %d bytes", MaxAddrLen)
	}
	if !strings.HasPrefix(s, Scheme) {
		return bad("must start with %q", Scheme)
	}
	rest := s[len(Scheme):]
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return bad("missing '@' between key hash and transport addresses")
	}
	key, err := canonicalKeyHash(rest[:at])
	if err != nil {
		return bad("%v", err)
	}
	list := rest[at+1:]
	if list == "" {
		return bad("no transport address after '@'")
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if p == "" {
			return bad("transport address %d is empty", i+1)
		}
		for _, r := range p {
			if r <= ' ' || r == 0x7f || r == '@' {
				return bad("transport address %d has a space, control character or '@'", i+1)
			}
		}
		scheme, err := transport.Scheme(p)
		if err != nil || p[len(scheme)+1:] == "" {
			return bad("transport address %q must look like scheme:address", p)
		}
	}
	return Addr{KeyHash: key, Transports: parts}, nil
}

// canonicalKeyHash checks that s is a base32 SHA-256 and returns it in
// canonical form.
func canonicalKeyHash(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty key hash")
	}
	b, err := decodeKeyHash(s)
	if err != nil {
		return "", err
	}
	return encodeKeyHash(b), nil
}

func decodeKeyHash(s string) ([]byte, error) {
	t := strings.TrimRight(strings.ToLower(s), "=")
	b, err := keyEncoding.DecodeString(strings.ToUpper(t))
	if err != nil {
		return nil, fmt.Errorf("key hash %s is not base32", quoteShort(s))
	}
	if len(b) != sha256.Size {
		return nil, fmt.Errorf("key hash %s is %d bytes, want %d", quoteShort(s), len(b), sha256.Size)
	}
	return b, nil
}

// KeyHash returns the pin of a certificate: base32 (lower case, unpadded)
// of the SHA-256 of its SubjectPublicKeyInfo.
func KeyHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return encodeKeyHash(sum[:])
}

// SameKeyHash reports whether two key hashes name the same key, whatever
// their case or padding.
func SameKeyHash(a, b string) bool {
	x, err1 := decodeKeyHash(a)
	y, err2 := decodeKeyHash(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func encodeKeyHash(b []byte) string {
	return strings.ToLower(keyEncoding.EncodeToString(b))
}

func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return fmt.Sprintf("%q", s)
}
