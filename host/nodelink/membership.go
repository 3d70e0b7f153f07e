package nodelink

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Grid membership: every node of a grid holds the same 32-byte grid secret.
// On each link the client proves it knows the secret without revealing it
// and without the proof being replayable on another link:
//
//	ekm   = TLS exporter (RFC 8446 7.5), label ExporterLabel, no context, 32 bytes
//	proof = HMAC-SHA256(secret, ProofDomain || ekm || client key hash (32 raw bytes))
//
// sent as base64 (standard, padded) in the gRPC metadata key ProofMetadata
// of every RPC. The server recomputes it from its own view of the link.
const (
	GridSecretSize = 32
	ExporterLabel  = "EXPORTER-tarn-grid-membership-v1"
	ProofDomain    = "tarn grid membership v1\x00"
	ProofMetadata  = "tarn-grid-proof"
)

// ErrNotMember is wrapped by membership check failures.
var ErrNotMember = errors.New("not a member of this grid")

// LoadGridSecret reads a grid secret file: exactly 32 raw bytes, or 64 hex
// digits, or 44 base64 characters, optionally followed by a newline.
func LoadGridSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read grid secret: %w", err)
	}
	s, err := ParseGridSecret(b)
	if err != nil {
		return nil, fmt.Errorf("grid secret %s: %w", path, err)
	}
	return s, nil
}

// ParseGridSecret decodes the contents of a grid secret file.
func ParseGridSecret(b []byte) ([]byte, error) {
	if len(b) == GridSecretSize {
		return append([]byte(nil), b...), nil
	}
	t := string(b)
	for len(t) > 0 && (t[len(t)-1] == '\n' || t[len(t)-1] == '\r') {
		t = t[:len(t)-1]
	}
	if len(t) == 2*GridSecretSize {
		if out, err := hex.DecodeString(t); err == nil {
			return out, nil
		}
	}
	if out, err := base64.StdEncoding.DecodeString(t); err == nil && len(out) == GridSecretSize {
		return out, nil
	}
	return nil, fmt.Errorf("want %d bytes (raw, hex or base64), got %d bytes of another form", GridSecretSize, len(b))
}

// Proof computes the membership proof for a link, given the link's TLS
// state and the client's key hash.
func Proof(secret []byte, cs tls.ConnectionState, clientKeyHash string) ([]byte, error) {
	key, err := decodeKeyHash(clientKeyHash)
	if err != nil {
		return nil, err
	}
	ekm, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("tls exporter: %w", err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ProofDomain))
	m.Write(ekm)
	m.Write(key)
	return m.Sum(nil), nil
}

// gridProof is the client's per-RPC credential carrying the proof.
type gridProof struct {
	secret  []byte
	keyHash string
}

var _ credentials.PerRPCCredentials = (*gridProof)(nil)

// GridProof returns per-RPC credentials that prove membership of the grid
// whose secret is given, for a client presenting cert. Use with
// grpc.WithPerRPCCredentials when dialing with DialGRPC.
func GridProof(secret []byte, cert tls.Certificate) (credentials.PerRPCCredentials, error) {
	if len(secret) != GridSecretSize {
		return nil, fmt.Errorf("grid secret is %d bytes, want %d", len(secret), GridSecretSize)
	}
	kh, err := CertKeyHash(cert)
	if err != nil {
		return nil, err
	}
	return &gridProof{secret: secret, keyHash: kh}, nil
}

func (g *gridProof) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return nil, errors.New("grid proof: no request info")
	}
	l, cs, err := authLink(ri.AuthInfo)
	if err != nil {
		return nil, errors.New("grid proof: link is not tls")
	}
	if l != nil {
		md, err := l.proofMetadata(g.secret, g.keyHash) // once per link
		if err != nil {
			return nil, fmt.Errorf("grid proof: %w", err)
		}
		return md, nil
	}
	p, err := Proof(g.secret, cs, g.keyHash)
	if err != nil {
		return nil, fmt.Errorf("grid proof: %w", err)
	}
	return map[string]string{ProofMetadata: base64.StdEncoding.EncodeToString(p)}, nil
}

func (g *gridProof) RequireTransportSecurity() bool { return true }

// CheckMembership verifies the proof carried by an incoming RPC. It returns
// nil or a gRPC PermissionDenied status that wraps nothing but says why.
func CheckMembership(ctx context.Context, secret []byte) error {
	l, cs, err := peerLink(ctx)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "%v: %v", ErrNotMember, err)
	}
	var kh string
	if l != nil {
		kh, err = l.peerKeyHash()
	} else {
		kh, err = PeerKeyHash(cs)
	}
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "%v: %v", ErrNotMember, err)
	}
	vals := metadata.ValueFromIncomingContext(ctx, ProofMetadata) // no copy of the whole metadata
	if len(vals) == 0 {
		return status.Errorf(codes.PermissionDenied, "%v: node %s sent no grid membership proof (configure the grid secret)", ErrNotMember, kh)
	}
	got, err := base64.StdEncoding.DecodeString(vals[0])
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "%v: node %s sent a malformed grid membership proof", ErrNotMember, kh)
	}
	var want []byte
	if l != nil {
		want, err = l.proofFor(secret, kh) // once per link
	} else {
		want, err = Proof(secret, cs, kh)
	}
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "%v: %v", ErrNotMember, err)
	}
	if !hmac.Equal(got, want) {
		return status.Errorf(codes.PermissionDenied, "%v: node %s proved another grid secret (check its grid.secret_file)", ErrNotMember, kh)
	}
	return nil
}
