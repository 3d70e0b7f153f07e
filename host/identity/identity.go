// Package identity is a node's long-lived Ed25519 key: created once by
// `tarn init`, kept in STATE/private/node.key, and shown to other nodes as a
// self-signed TLS certificate. Other nodes do not trust the certificate's
// issuer but pin the hash of its public key (the key hash), which a node's
// address carries (see host/nodelink).
//
// It also keeps the node's 32-byte secrets (convergence secret, grid
// secret) under the same rule: created once, mode 0600, refused when others
// can read them.
package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Paths inside a node's state folder.
const (
	PrivateDir = "private"
	KeyFile    = "node.key" // in PrivateDir
)

// NodeIDPrefix starts every node id; it names the derivation, so a later
// scheme can be told apart.
const NodeIDPrefix = "v1-"

// nodeIDLen is the number of key-hash characters in a node id: 26 base32
// characters, 130 bits, short enough to read in a log and far beyond any
// accidental collision.
const nodeIDLen = 26

var (
	// ErrExist is returned (wrapped) by Create and CreateSecret when the file
	// is already there: a key is never overwritten.
	ErrExist = fs.ErrExist
	// ErrTooOpen is returned (wrapped) when a key or secret file can be read
	// by group or others.
	ErrTooOpen = errors.New("readable by group or others")
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Identity is a node's key pair and what is derived from it.
type Identity struct {
	key  ed25519.PrivateKey
	spki []byte // DER SubjectPublicKeyInfo of the public key

	once sync.Once
	cert tls.Certificate
	err  error
}

// New wraps an existing private key; Create and Load are the usual ways.
func New(key ed25519.PrivateKey) (*Identity, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return &Identity{key: key, spki: spki}, nil
}

// KeyPath is the key file of the node whose state folder is dir.
func KeyPath(dir string) string { return filepath.Join(dir, PrivateDir, KeyFile) }

// Create makes a new key and writes it to DIR/private/node.key (PEM
// PKCS#8, mode 0600, in a folder of mode 0700). It refuses to replace an
// existing key.
func Create(dir string) (*Identity, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	id, err := New(key)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal node key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeNew(KeyPath(dir), data); err != nil {
		return nil, fmt.Errorf("create node key: %w", err)
	}
	return id, nil
}

// Load reads DIR/private/node.key. It refuses a file that group or others
// may read, saying which chmod fixes it.
func Load(dir string) (*Identity, error) {
	path := KeyPath(dir)
	data, err := readPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("load node key: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("load node key %s: not a PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load node key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load node key %s: a %T, want an Ed25519 key", path, k)
	}
	return New(key)
}

// Public is the node's public key.
func (id *Identity) Public() ed25519.PublicKey { return id.key.Public().(ed25519.PublicKey) }

// PrivateKey is the node's private key, for signing (announcements, say).
func (id *Identity) PrivateKey() ed25519.PrivateKey { return id.key }

// Sign signs msg with the node's key.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.key, msg) }

// KeyHash is the pin other nodes hold for this one: the SHA-256 of the
// public key's DER SubjectPublicKeyInfo, base32, lower case, unpadded (52
// characters). It equals SPKIHash of the node's certificate.
func (id *Identity) KeyHash() string { return spkiHash(id.spki) }

// NodeID is a short printable name of the node, "v1-" and the first 26
// characters of its key hash; a key hash thus tells its node id.
func (id *Identity) NodeID() string { return NodeIDOf(id.KeyHash()) }

// NodeIDOf is the node id belonging to a key hash.
func NodeIDOf(keyHash string) string {
	if len(keyHash) < nodeIDLen {
		return NodeIDPrefix + keyHash
	}
	return NodeIDPrefix + keyHash[:nodeIDLen]
}

// SPKIHash is the key hash of a certificate's public key: what a peer's
// certificate must hash to when pinned.
func SPKIHash(cert *x509.Certificate) string { return spkiHash(cert.RawSubjectPublicKeyInfo) }

func spkiHash(spki []byte) string {
	sum := sha256.Sum256(spki)
	return strings.ToLower(b32.EncodeToString(sum[:]))
}

// TLSCertificate is a self-signed X.509 certificate over the node key,
// valid from an hour ago until the end of 9999 (RFC 5280's "no
// expiration"): peers pin the key, so neither issuer nor dates carry
// trust. It is made once per Identity and usable as a server and a client
// certificate.
func (id *Identity) TLSCertificate() (tls.Certificate, error) {
	id.once.Do(func() { id.cert, id.err = id.makeCert() })
	return id.cert, id.err
}

func (id *Identity) makeCert() (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tarn node " + id.NodeID()},
		DNSNames:              []string{"tarn"},
		NotBefore:             time.Now().Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.key.Public(), crypto.Signer(id.key))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse node certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.key, Leaf: leaf}, nil
}

// writeNew writes data to path with mode 0600, creating the parent folder
// with mode 0700. It writes a temporary file, syncs it and hard-links it
// into place, so path is either absent or whole, and an existing path is
// never replaced (link fails with ErrExist).
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %w (refusing to overwrite)", path, ErrExist)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w (refusing to overwrite)", path, ErrExist)
		}
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// readPrivate reads a key or secret file, refusing one that group or
// others may read.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if err := CheckPrivate(path, st); err != nil {
		return nil, err
	}
	if st.Size() > 1<<16 {
		return nil, fmt.Errorf("%s is too large for a key (%d bytes)", path, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return data, nil
}
