// Package cap is tarn's capabilities: the printable strings that carry the
// authority to read, verify or (later) write a file or directory.
//
// Grammar (docs/formats.md has the full table):
//
//	cap    = "tarn:" kind ":" field *( ":" field )
//	kind   = lowercase letters, digits and "-"
//	binary fields are lowercase RFC 4648 base32 without padding;
//	numbers are decimal without sign or leading zeros.
//
// Kinds defined here: chk (immutable read cap), chk-verify (its verify cap)
// and lit (a small file held in the cap). Later kinds (mut, dir, ...) use
// the same grammar; Parse refuses kinds it does not know.
package cap

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Prefix starts every cap.
const Prefix = "tarn:"

// Kinds.
const (
	KindCHK       = "chk"
	KindCHKVerify = "chk-verify"
	KindLiteral   = "lit"
)

// LiteralMax is the largest file kept inside a literal cap. At 55 bytes a
// lit cap (97 characters) is still shorter than any chk cap (~125), and it
// matches Tahoe-LAFS, so users' expectations carry over.
const LiteralMax = 55

// KeySize is the AES-256 read key length; HashSize the UEB hash length.
const (
	KeySize  = 32
	HashSize = tagged.Size
)

// MaxFileSize bounds the size field (2^62), far above any real file and
// safe for int64 offsets.
const MaxFileSize = 1 << 62

// Sentinel errors.
var (
	ErrSyntax      = errors.New("cap: malformed")
	ErrUnknownKind = errors.New("cap: unknown kind")
	ErrNoVerify    = errors.New("cap: has no verify cap")
)

// Cap is any capability.
type Cap interface {
	// Kind is the kind field, e.g. "chk".
	Kind() string
	// String is the printable cap; Parse(c.String()) gives back c.
	String() string
}

// enc is lowercase base32 without padding.
var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Key is an immutable file's AES-256 read key.
type Key [KeySize]byte

// StorageIndex is where a file's shares live on servers.
type StorageIndex [storage.StorageIndexSize]byte

// StorageIndexOf derives the storage index from a read key by a one-way
// tagged hash, so a verify cap (which holds the index) cannot yield the key.
func StorageIndexOf(k Key) StorageIndex {
	s := tagged.Hash(tagged.ChkStorageIndex, k[:])
	var si StorageIndex
	copy(si[:], s[:])
	return si
}

// String is the base32 form of the index (26 characters).
func (si StorageIndex) String() string { return enc.EncodeToString(si[:]) }

// CHK is the read cap of an immutable file.
type CHK struct {
	Key     Key
	UEBHash [HashSize]byte
	K, N    int
	Size    int64
}

// CHKVerify is the verify cap of an immutable file: it checks integrity of
// every share without being able to read the file.
type CHKVerify struct {
	StorageIndex StorageIndex
	UEBHash      [HashSize]byte
	K, N         int
	Size         int64
}

// Literal is a small file held whole in the cap.
type Literal struct {
	Data []byte
}

var (
	_ Cap = CHK{}
	_ Cap = CHKVerify{}
	_ Cap = Literal{}
)

func (CHK) Kind() string       { return KindCHK }
func (CHKVerify) Kind() string { return KindCHKVerify }
func (Literal) Kind() string   { return KindLiteral }

func (c CHK) String() string {
	return fmt.Sprintf("%s%s:%s:%s:%d:%d:%d", Prefix, KindCHK, enc.EncodeToString(c.Key[:]),
		enc.EncodeToString(c.UEBHash[:]), c.K, c.N, c.Size)
}

func (c CHKVerify) String() string {
	return fmt.Sprintf("%s%s:%s:%s:%d:%d:%d", Prefix, KindCHKVerify, enc.EncodeToString(c.StorageIndex[:]),
		enc.EncodeToString(c.UEBHash[:]), c.K, c.N, c.Size)
}

func (c Literal) String() string { return Prefix + KindLiteral + ":" + enc.EncodeToString(c.Data) }

// StorageIndex derives the index of the file's shares.
func (c CHK) StorageIndex() StorageIndex { return StorageIndexOf(c.Key) }

// Verify diminishes the read cap to its verify cap, offline.
func (c CHK) Verify() CHKVerify {
	return CHKVerify{StorageIndex: c.StorageIndex(), UEBHash: c.UEBHash, K: c.K, N: c.N, Size: c.Size}
}

// Params are the cap's encoding parameters.
func (c CHK) Params() codec.Params { return codec.Params{K: c.K, N: c.N} }

// Params are the cap's encoding parameters.
func (c CHKVerify) Params() codec.Params { return codec.Params{K: c.K, N: c.N} }

// Diminish returns the verify cap of c: a chk read cap gives its chk-verify
// cap, a verify cap gives itself; a literal has none (ErrNoVerify): there is
// nothing stored to verify.
func Diminish(c Cap) (Cap, error) {
	switch v := c.(type) {
	case CHK:
		return v.Verify(), nil
	case CHKVerify:
		return v, nil
	case interface{ VerifyCap() Cap }:
		return v.VerifyCap(), nil
	default:
		return nil, fmt.Errorf("diminish %s cap: %w", c.Kind(), ErrNoVerify)
	}
}

// Parse reads a cap string. Surrounding white space is ignored.
func Parse(s string) (Cap, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, Prefix) {
		return nil, fmt.Errorf("%w: does not start with %q", ErrSyntax, Prefix)
	}
	kind, rest, ok := strings.Cut(s[len(Prefix):], ":")
	if !ok {
		return nil, fmt.Errorf("%w: no fields after kind %q", ErrSyntax, short(kind))
	}
	fields := strings.Split(rest, ":")
	switch kind {
	case KindCHK:
		if err := nfields(kind, fields, 5); err != nil {
			return nil, err
		}
		var c CHK
		if err := bin(kind, "read key", fields[0], c.Key[:]); err != nil {
			return nil, err
		}
		if err := bin(kind, "extension block hash", fields[1], c.UEBHash[:]); err != nil {
			return nil, err
		}
		var err error
		if c.K, c.N, c.Size, err = kns(kind, fields[2:]); err != nil {
			return nil, err
		}
		return c, nil
	case KindCHKVerify:
		if err := nfields(kind, fields, 5); err != nil {
			return nil, err
		}
		var c CHKVerify
		if err := bin(kind, "storage index", fields[0], c.StorageIndex[:]); err != nil {
			return nil, err
		}
		if err := bin(kind, "extension block hash", fields[1], c.UEBHash[:]); err != nil {
			return nil, err
		}
		var err error
		if c.K, c.N, c.Size, err = kns(kind, fields[2:]); err != nil {
			return nil, err
		}
		return c, nil
	case KindLiteral:
		if err := nfields(kind, fields, 1); err != nil {
			return nil, err
		}
		if len(fields[0]) > enc.EncodedLen(LiteralMax) {
			return nil, fmt.Errorf("%w: lit cap data longer than %d bytes", ErrSyntax, LiteralMax)
		}
		data, err := decode(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%w: lit cap data: %v", ErrSyntax, err)
		}
		return Literal{Data: data}, nil
	default:
		if parse := kinds[kind]; parse != nil {
			return parse(fields)
		}
		return nil, fmt.Errorf("%w %q", ErrUnknownKind, short(kind))
	}
}

// kinds parses the kinds that other files of this package define (mutable.go
// for tarn:mut caps, ...), keyed by kind; fields are the ":"-separated fields
// after the kind.
var kinds = map[string]func(fields []string) (Cap, error){}

func short(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func nfields(kind string, f []string, n int) error {
	if len(f) != n {
		return fmt.Errorf("%w: %s cap has %d fields, want %d", ErrSyntax, kind, len(f), n)
	}
	return nil
}

// decode is strict: only canonical lowercase base32 (no padding, no stray
// bits), so that every cap has exactly one spelling.
func decode(s string) ([]byte, error) {
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("bad base32")
	}
	if enc.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base32")
	}
	return b, nil
}

func bin(kind, what, s string, out []byte) error {
	b, err := decode(s)
	if err != nil {
		return fmt.Errorf("%w: %s cap %s: %v", ErrSyntax, kind, what, err)
	}
	if len(b) != len(out) {
		return fmt.Errorf("%w: %s cap %s is %d bytes, want %d", ErrSyntax, kind, what, len(b), len(out))
	}
	copy(out, b)
	return nil
}

func num(kind, what, s string, max uint64) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("%w: %s cap %s %q is not a plain decimal number", ErrSyntax, kind, what, short(s))
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("%w: %s cap %s %q out of range 0..%d", ErrSyntax, kind, what, short(s), max)
	}
	return v, nil
}

func kns(kind string, f []string) (k, n int, size int64, err error) {
	kk, err := num(kind, "K", f[0], codec.MaxShares)
	if err != nil {
		return 0, 0, 0, err
	}
	nn, err := num(kind, "N", f[1], codec.MaxShares)
	if err != nil {
		return 0, 0, 0, err
	}
	if kk < 1 || nn < kk {
		return 0, 0, 0, fmt.Errorf("%w: %s cap K=%d N=%d: need 1 <= K <= N", ErrSyntax, kind, kk, nn)
	}
	sz, err := num(kind, "size", f[2], MaxFileSize)
	if err != nil {
		return 0, 0, 0, err
	}
	if sz == 0 {
		// An empty file is always "tarn:lit:"; it has no shares.
		return 0, 0, 0, fmt.Errorf("%w: %s cap of an empty file: use a lit cap", ErrSyntax, kind)
	}
	return int(kk), int(nn), int64(sz), nil
}
