package conf

import (
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"os"
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

// CanonicalKeyHash checks that s is a key hash (unpadded base32 of a
// SHA-256, as identity.KeyHash makes; either case, padding tolerated) and
// returns it in canonical form: lower case, unpadded.
func CanonicalKeyHash(s string) (string, error) {
	t := strings.ToUpper(strings.TrimRight(s, "="))
	b, err := b32.DecodeString(t)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("bad key hash %q: want %d base32 characters (the SHA-256 of the node's public key)", s, KeyHashLen)
	}
	return strings.ToLower(t), nil
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

// ErrBadNodeURL is wrapped by CheckNodeURL's errors.
var ErrBadNodeURL = errors.New("bad node url")

// CheckNodeURL checks a node URL "tarn://KEYHASH@ADDRESS[,ADDRESS...]", the
// grammar host/nodelink.ParseAddr reads (use that to take one apart).
func CheckNodeURL(s string) error {
	rest, ok := strings.CutPrefix(s, "tarn://")
	if !ok {
		return fmt.Errorf("%w %q: want tarn://KEYHASH@ADDRESS", ErrBadNodeURL, s)
	}
	kh, addrs, ok := strings.Cut(rest, "@")
	if !ok {
		return fmt.Errorf("%w %q: want tarn://KEYHASH@ADDRESS", ErrBadNodeURL, s)
	}
	if _, err := CanonicalKeyHash(kh); err != nil {
		return fmt.Errorf("%w: %v", ErrBadNodeURL, err)
	}
	for _, a := range strings.Split(addrs, ",") {
		if err := CheckAddress(a, false); err != nil {
			return fmt.Errorf("%w: %v", ErrBadNodeURL, err)
		}
	}
	return nil
}

// URL is the server's node URL, "tarn://KEYHASH@ADDRESS".
func (s Server) URL() string { return "tarn://" + s.KeyHash + "@" + s.Address }

// Announced picks the addresses a node announces, which others dial: the
// profile's announce list when set, else the listen (or bound) addresses
// with an unspecified host (0.0.0.0, ::) replaced by this machine's host
// name.
func Announced(announce, listen []string) []string {
	if len(announce) > 0 {
		return announce
	}
	out := make([]string, 0, len(listen))
	for _, a := range listen {
		if rest, ok := strings.CutPrefix(a, "tcp:"); ok {
			if host, port, err := net.SplitHostPort(rest); err == nil {
				if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
					h, _ := os.Hostname()
					if h == "" {
						h = "localhost"
					}
					a = "tcp:" + net.JoinHostPort(h, port)
				}
			}
		}
		out = append(out, a)
	}
	return out
}
