package conf

import (
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// A transport address is "SCHEME:REST"; the transport plugin named SCHEME
// owns REST's syntax. conf checks "tcp:HOST:PORT" fully and, for other
// schemes, only the shape.
//
// A node URL names a node reachable over the grid and the key it must
// prove in TLS: "tarn://KEYHASH@ADDRESS", for example
// "tarn://mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dzpiydcmrtgq2a@tcp:10.0.0.5:3458".
// An introducer writes its URL at start; clients list it in grid.introducers.

// KeyHashLen is the length of a key hash: unpadded base32 of 32 bytes.
const KeyHashLen = 52

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// CheckKeyHash reports whether s is a well-formed key hash (lowercase
// unpadded base32 of a SHA-256, as identity.KeyHash makes).
func CheckKeyHash(s string) error {
	if len(s) != KeyHashLen || strings.ToLower(s) != s {
		return fmt.Errorf("bad key hash %q: want %d lowercase base32 characters", s, KeyHashLen)
	}
	if b, err := b32.DecodeString(strings.ToUpper(s)); err != nil || len(b) != 32 {
		return fmt.Errorf("bad key hash %q: want %d lowercase base32 characters", s, KeyHashLen)
	}
	return nil
}

// CheckAddress checks a transport address. A listen address may use port 0
// (any free port); an address others dial may not.
func CheckAddress(a string, listen bool) error {
	scheme, rest, ok := strings.Cut(a, ":")
	if !ok || !validScheme(scheme) || rest == "" {
		return fmt.Errorf("bad address %q: want SCHEME:ADDRESS such as \"tcp:0.0.0.0:3457\"", a)
	}
	if scheme != "tcp" {
		return nil
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return fmt.Errorf("bad address %q: want tcp:HOST:PORT", a)
	}
	if !listen && (host == "" || host == "0.0.0.0" || host == "::") {
		return fmt.Errorf("bad address %q: others cannot dial an unspecified host", a)
	}
	return checkPort(a, port, listen)
}

// CheckHostPort checks a plain "HOST:PORT" listen address (HTTP, SSH).
func CheckHostPort(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("bad address %q: want HOST:PORT such as \"127.0.0.1:8080\"", a)
	}
	return checkPort(a, port, true)
}

func checkPort(a, port string, zeroOK bool) error {
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("bad address %q: port %q is not a number", a, port)
	}
	if n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		lo := 0
		if !zeroOK {
			lo = 1
		}
		return fmt.Errorf("bad address %q: port %d out of range %d-65535", a, n, lo)
	}
	return nil
}

func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// NodeURL is a node's dialable address with the key hash it must present.
type NodeURL struct {
	KeyHash string // identity.KeyHash of the node
	Address string // transport address, e.g. "tcp:10.0.0.5:3458"
}

// ErrBadNodeURL is wrapped by ParseNodeURL's errors.
var ErrBadNodeURL = errors.New("bad node url")

// ParseNodeURL parses "tarn://KEYHASH@ADDRESS".
func ParseNodeURL(s string) (NodeURL, error) {
	rest, ok := strings.CutPrefix(s, "tarn://")
	if !ok {
		return NodeURL{}, fmt.Errorf("%w %q: want tarn://KEYHASH@ADDRESS", ErrBadNodeURL, s)
	}
	kh, addr, ok := strings.Cut(rest, "@")
	if !ok {
		return NodeURL{}, fmt.Errorf("%w %q: want tarn://KEYHASH@ADDRESS", ErrBadNodeURL, s)
	}
	if err := CheckKeyHash(kh); err != nil {
		return NodeURL{}, fmt.Errorf("%w: %v", ErrBadNodeURL, err)
	}
	if err := CheckAddress(addr, false); err != nil {
		return NodeURL{}, fmt.Errorf("%w: %v", ErrBadNodeURL, err)
	}
	return NodeURL{KeyHash: kh, Address: addr}, nil
}

// String writes the URL as ParseNodeURL reads it.
func (u NodeURL) String() string { return "tarn://" + u.KeyHash + "@" + u.Address }
