// Package introducer lets storage servers and clients of one grid find each
// other. Storage servers publish signed announcements (who they are, where
// they listen with their key pinned, how much space they have) to an
// introducer; clients subscribe and keep an up-to-date server list. The
// introducer relays records but cannot forge or alter them: subscribers
// check every signature themselves.
//
// Records are kept in memory and re-announced periodically, so a restarted
// introducer is whole again within one announcement interval (or at once,
// when it persists them).
package introducer

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer/introducerpb"
	"github.com/tarnfs/tarn/host/nodelink"
)

// SignDomain prefixes the announcement bytes under the signature, so an
// announcement signature can never be taken for another signature of the
// same node key.
const SignDomain = "tarn 2026 introducer announcement v1\x00"

// ServiceStorage is the service a storage server announces.
const ServiceStorage = "storage"

// Limits on what is accepted.
const (
	MaxRecordSize = 16 << 10           // bytes of a signed announcement
	MaxAddresses  = 16                 // node addresses per record
	MaxLifetime   = 7 * 24 * time.Hour // expiry - issue time
	MaxClockSkew  = 5 * time.Minute    // how far in the future issued_at may be
)

// Sentinel errors: why a record was dropped. Every Verify error wraps one.
var (
	ErrMalformed    = errors.New("malformed announcement")
	ErrBadSignature = errors.New("bad signature")
	ErrIDMismatch   = errors.New("node id does not match the key")
	ErrOtherGrid    = errors.New("announcement for another grid")
	ErrExpired      = errors.New("announcement expired")
	ErrStale        = errors.New("announcement not newer than the one held")
	ErrFull         = errors.New("introducer holds too many records")
)

// Reason names a drop reason for counters and logs: "bad signature", ...
func Reason(err error) string {
	for _, e := range []error{ErrMalformed, ErrBadSignature, ErrIDMismatch, ErrOtherGrid, ErrExpired, ErrStale, ErrFull} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "other"
}

// Record is a verified (or to-be-signed) announcement.
type Record struct {
	NodeID    string
	PublicKey ed25519.PublicKey
	Addresses []string // node addresses, "tarn://KEYHASH@transport,..."
	Grid      string
	Service   string
	FreeSpace uint64
	Version   string
	Nickname  string
	Sequence  uint64
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// KeyHash is the key hash (pin) of the record's public key.
func (r *Record) KeyHash() string { return KeyHashOf(r.PublicKey) }

// Key is what identifies a record in a table: node id and service.
func (r *Record) Key() string { return r.NodeID + "/" + r.Service }

// KeyHashOf returns the key hash of an Ed25519 public key, as
// identity.(*Identity).KeyHash does for a node's own key.
func KeyHashOf(pub ed25519.PublicKey) string {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(spki)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// Sign fills in r's node id and public key from id and returns the signed
// announcement.
func Sign(id *identity.Identity, r Record) (*introducerpb.SignedAnnouncement, error) {
	r.PublicKey = id.Public()
	r.NodeID = id.NodeID()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&introducerpb.Announcement{
		NodeId:      r.NodeID,
		PublicKey:   r.PublicKey,
		Addresses:   r.Addresses,
		Grid:        r.Grid,
		Service:     r.Service,
		FreeSpace:   r.FreeSpace,
		Version:     r.Version,
		Sequence:    r.Sequence,
		IssuedAtMs:  r.IssuedAt.UnixMilli(),
		ExpiresAtMs: r.ExpiresAt.UnixMilli(),
		Nickname:    r.Nickname,
	})
	if err != nil {
		return nil, fmt.Errorf("encode announcement of %s: %w", r.NodeID, err)
	}
	return &introducerpb.SignedAnnouncement{
		Announcement: b,
		Signature:    id.Sign(append([]byte(SignDomain), b...)),
	}, nil
}

// Verify checks a signed announcement for grid at time now and returns its
// record. The checks, in order: size and encoding, the signature by the
// record's own key, that the node id and every address pin belong to that
// key, the grid, and the validity period. Sequence numbers are the
// holder's business (ErrStale).
func Verify(sa *introducerpb.SignedAnnouncement, grid string, now time.Time) (Record, error) {
	r, err := open(sa, now)
	if err != nil {
		return r, err
	}
	if r.Grid != grid {
		return r, fmt.Errorf("announcement of %s: %w %q (this is %q)", r.NodeID, ErrOtherGrid, r.Grid, grid)
	}
	return r, nil
}

func open(sa *introducerpb.SignedAnnouncement, now time.Time) (Record, error) {
	return openAt(sa, now, true)
}

// openAt is open, checking the expiry only with checkExpiry: a client's
// cached announcements (cache.go) are used past it until an introducer
// answers.
func openAt(sa *introducerpb.SignedAnnouncement, now time.Time, checkExpiry bool) (Record, error) {
	if sa == nil {
		return Record{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if n := len(sa.Announcement) + len(sa.Signature); n > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, n, MaxRecordSize)
	}
	var a introducerpb.Announcement
	if err := proto.Unmarshal(sa.Announcement, &a); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r := Record{
		NodeID:    a.NodeId,
		PublicKey: ed25519.PublicKey(a.PublicKey),
		Addresses: a.Addresses,
		Grid:      a.Grid,
		Service:   a.Service,
		FreeSpace: a.FreeSpace,
		Version:   a.Version,
		Nickname:  a.Nickname,
		Sequence:  a.Sequence,
		IssuedAt:  time.UnixMilli(a.IssuedAtMs),
		ExpiresAt: time.UnixMilli(a.ExpiresAtMs),
	}
	who := fmt.Sprintf("announcement of %q", short(r.NodeID))
	if len(a.PublicKey) != ed25519.PublicKeySize {
		return r, fmt.Errorf("%s: %w: public key is %d bytes, want %d", who, ErrMalformed, len(a.PublicKey), ed25519.PublicKeySize)
	}
	if len(sa.Signature) != ed25519.SignatureSize {
		return r, fmt.Errorf("%s: %w: signature is %d bytes, want %d", who, ErrBadSignature, len(sa.Signature), ed25519.SignatureSize)
	}
	if !ed25519.Verify(r.PublicKey, append([]byte(SignDomain), sa.Announcement...), sa.Signature) {
		return r, fmt.Errorf("%s: %w", who, ErrBadSignature)
	}
	kh := r.KeyHash()
	if want := identity.NodeIDOf(kh); r.NodeID != want {
		return r, fmt.Errorf("%s: %w: the key's node id is %s", who, ErrIDMismatch, want)
	}
	if r.Service == "" {
		return r, fmt.Errorf("%s: %w: no service", who, ErrMalformed)
	}
	if len(r.Addresses) > MaxAddresses {
		return r, fmt.Errorf("%s: %w: %d addresses, limit %d", who, ErrMalformed, len(r.Addresses), MaxAddresses)
	}
	for _, s := range r.Addresses {
		addr, err := nodelink.ParseAddr(s)
		if err != nil {
			return r, fmt.Errorf("%s: %w: %v", who, ErrMalformed, err)
		}
		if !nodelink.SameKeyHash(addr.KeyHash, kh) {
			return r, fmt.Errorf("%s: %w: address %s is pinned to another key", who, ErrIDMismatch, s)
		}
	}
	if !r.ExpiresAt.After(r.IssuedAt) || r.ExpiresAt.Sub(r.IssuedAt) > MaxLifetime {
		return r, fmt.Errorf("%s: %w: lifetime %s outside (0, %s]", who, ErrMalformed, r.ExpiresAt.Sub(r.IssuedAt), MaxLifetime)
	}
	if r.IssuedAt.After(now.Add(MaxClockSkew)) {
		return r, fmt.Errorf("%s: %w: issued %s in the future", who, ErrMalformed, r.IssuedAt.Sub(now).Round(time.Second))
	}
	if checkExpiry && !now.Before(r.ExpiresAt) {
		return r, fmt.Errorf("%s: %w at %s", who, ErrExpired, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return r, nil
}

// Decode parses the wire bytes of a SignedAnnouncement and verifies it as
// Verify does.
func Decode(b []byte, grid string, now time.Time) (Record, error) {
	if len(b) > MaxRecordSize+64 {
		return Record{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	var sa introducerpb.SignedAnnouncement
	if err := proto.Unmarshal(b, &sa); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return Verify(&sa, grid, now)
}

func short(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
