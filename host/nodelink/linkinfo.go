package nodelink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// linkInfo is the gRPC AuthInfo of a nodelink connection: its TLS state
// and what is derived from it once for the connection's life rather than
// on every RPC: the peer's key hash and the membership proof (a TLS
// exporter and an HMAC). The proof is bound to the link, not to the RPC,
// so one value serves every call on it.
type linkInfo struct {
	credentials.TLSInfo

	mu       sync.Mutex
	keyHash  string // the peer's, once computed
	khErr    error
	khDone   bool
	proofSec []byte // the secret and key hash the cached proof is for
	proofKH  string
	proof    []byte
	proofMD  map[string]string // mdProof as per-RPC metadata, read-only
	mdProof  []byte
}

var _ credentials.AuthInfo = (*linkInfo)(nil)

func newLinkInfo(tc *tls.Conn) *linkInfo {
	return &linkInfo{TLSInfo: tlsInfo(tc)}
}

// peerKeyHash is PeerKeyHash of the link, computed once.
func (l *linkInfo) peerKeyHash() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.khDone {
		l.keyHash, l.khErr = PeerKeyHash(l.State)
		l.khDone = true
	}
	return l.keyHash, l.khErr
}

// proofFor is Proof(secret, the link's state, kh), computed once per
// secret and key hash (a link only ever sees one of each).
func (l *linkInfo) proofFor(secret []byte, kh string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proof != nil && l.proofKH == kh && bytes.Equal(l.proofSec, secret) {
		return l.proof, nil
	}
	p, err := Proof(secret, l.State, kh)
	if err != nil {
		return nil, err
	}
	l.proofSec, l.proofKH, l.proof = bytes.Clone(secret), kh, p
	return p, nil
}

// proofMetadata is the metadata carrying proofFor(secret, kh), built
// once per link: gRPC copies it into each call's headers and never
// changes it, so every RPC on the link shares one map and one base64
// string.
func (l *linkInfo) proofMetadata(secret []byte, kh string) (map[string]string, error) {
	p, err := l.proofFor(secret, kh)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proofMD == nil || !bytes.Equal(l.mdProof, p) {
		l.proofMD = map[string]string{ProofMetadata: base64.StdEncoding.EncodeToString(p)}
		l.mdProof = p
	}
	return l.proofMD, nil
}

// authLink returns the link an RPC arrived on, or the TLS state of an
// AuthInfo made elsewhere (nil link).
func authLink(ai credentials.AuthInfo) (*linkInfo, tls.ConnectionState, error) {
	switch a := ai.(type) {
	case *linkInfo:
		return a, a.State, nil
	case credentials.TLSInfo:
		return nil, a.State, nil
	}
	return nil, tls.ConnectionState{}, errors.New("rpc did not arrive over a nodelink")
}

func peerLink(ctx context.Context) (*linkInfo, tls.ConnectionState, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, tls.ConnectionState{}, errors.New("no peer in context")
	}
	return authLink(p.AuthInfo)
}
