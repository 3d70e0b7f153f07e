package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters HashPassword uses: OWASP's recommended minimum
// (19 MiB, 2 passes, 1 lane). Memory is per verification, and a node
// verifies at most MaxConcurrentVerify passwords at once, so a burst of
// logins cannot run the node out of memory.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds a stored argon2id hash must stay within: a profile may come from
// anywhere, and a hash asking for 4 TiB or a million passes would take
// the node down at the first login.
const (
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	maxArgonTime    = 64
	maxArgonThreads = 64
	maxArgonKeyLen  = 128
	maxArgonSaltLen = 128
	minArgonKeyLen  = 16
	minArgonSaltLen = 8
)

// ErrHashFormat: a password hash tarn cannot read (neither a well-formed
// argon2id nor a bcrypt hash, or parameters out of bounds).
var ErrHashFormat = errors.New("password hash format")

// HashPassword makes an argon2id hash of pw in the PHC string format
// ("$argon2id$v=19$m=19456,t=2,p=1$salt$key", unpadded standard base64),
// the form [[accounts]] password_hash takes.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// argonHash is a parsed argon2id PHC string.
type argonHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// parseArgon2id reads "$argon2id$v=19$m=M,t=T,p=P$salt$key".
func parseArgon2id(s string) (*argonHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, fmt.Errorf("%w: argon2id hash must be $argon2id$v=19$m=...,t=...,p=...$salt$key", ErrHashFormat)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("%w: argon2id version %q, want v=%d", ErrHashFormat, short(parts[2]), argon2.Version)
	}
	h := &argonHash{}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("%w: argon2id parameters %q", ErrHashFormat, short(parts[3]))
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: argon2id parameter %s=%q", ErrHashFormat, short(k), short(v))
		}
		switch k {
		case "m":
			if n < 8 || n > maxArgonMemory {
				return nil, fmt.Errorf("%w: argon2id memory %d KiB, want 8..%d", ErrHashFormat, n, maxArgonMemory)
			}
			h.memory = uint32(n)
		case "t":
			if n < 1 || n > maxArgonTime {
				return nil, fmt.Errorf("%w: argon2id passes %d, want 1..%d", ErrHashFormat, n, maxArgonTime)
			}
			h.time = uint32(n)
		case "p":
			if n < 1 || n > maxArgonThreads {
				return nil, fmt.Errorf("%w: argon2id lanes %d, want 1..%d", ErrHashFormat, n, maxArgonThreads)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("%w: unknown argon2id parameter %q", ErrHashFormat, short(k))
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return nil, fmt.Errorf("%w: argon2id parameters %q need m, t and p", ErrHashFormat, short(parts[3]))
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < minArgonSaltLen || len(h.salt) > maxArgonSaltLen {
		return nil, fmt.Errorf("%w: argon2id salt must be %d..%d bytes of unpadded base64", ErrHashFormat, minArgonSaltLen, maxArgonSaltLen)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < minArgonKeyLen || len(h.key) > maxArgonKeyLen {
		return nil, fmt.Errorf("%w: argon2id key must be %d..%d bytes of unpadded base64", ErrHashFormat, minArgonKeyLen, maxArgonKeyLen)
	}
	return h, nil
}

func (h *argonHash) verify(pw string) bool {
	k := argon2.IDKey([]byte(pw), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

// verifier checks one password against a stored hash.
type verifier interface{ verify(pw string) bool }

type bcryptHash []byte

func (h bcryptHash) verify(pw string) bool {
	return bcrypt.CompareHashAndPassword(h, []byte(pw)) == nil
}

// maxBcryptCost bounds a stored bcrypt cost (2^cost rounds).
const maxBcryptCost = 16

// ParseHash checks a stored password hash: argon2id in PHC form or bcrypt
// ($2a$, $2b$, $2y$), with bounded parameters.
func ParseHash(s string) error {
	_, err := parseHash(s)
	return err
}

func parseHash(s string) (verifier, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%w: bcrypt: %v", ErrHashFormat, err)
		}
		if cost > maxBcryptCost {
			return nil, fmt.Errorf("%w: bcrypt cost %d, more than %d", ErrHashFormat, cost, maxBcryptCost)
		}
		if len(s) != 60 {
			return nil, fmt.Errorf("%w: bcrypt hash of %d characters, want 60", ErrHashFormat, len(s))
		}
		return bcryptHash(s), nil
	default:
		return nil, fmt.Errorf("%w: want $argon2id$... or bcrypt $2b$...", ErrHashFormat)
	}
}

// VerifyPassword reports whether pw matches the stored hash, in time that
// does not depend on how much of it matches.
func VerifyPassword(hash, pw string) (bool, error) {
	v, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	return v.verify(pw), nil
}

func short(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
