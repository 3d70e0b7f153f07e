package sftp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxHostKeyFile bounds a host key file read at start.
const maxHostKeyFile = 64 << 10

// LoadHostKey reads the OpenSSH private key in path, or, when the file does
// not exist, generates one and writes it there with mode 0600 (and its
// public half beside it as path+".pub", as ssh-keygen does). The key type
// of a new key follows the file name: "rsa" in it makes a 3072-bit RSA key
// (for old clients), "ecdsa" a P-256 key, anything else ed25519. A key is
// generated once and kept, so clients' known_hosts stay valid.
func LoadHostKey(path string) (ssh.Signer, error) {
	b, err := readSmall(path, maxHostKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return generateHostKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		if err := hostKeyPrivate(path, st); err != nil {
			return nil, err
		}
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w (an unencrypted OpenSSH or PEM private key is needed)", path, err)
	}
	return s, nil
}

func readSmall(path string, max int64) ([]byte, error) {
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
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%d bytes, more than %d", st.Size(), max)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return b, nil
}

// keyTypeFor is the key type a new host key file of that name gets.
func keyTypeFor(path string) string {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, "ecdsa"):
		return "ecdsa"
	case strings.Contains(base, "rsa"):
		return "rsa"
	default:
		return "ed25519"
	}
}

func generateHostKey(path string) (ssh.Signer, error) {
	var priv crypto.PrivateKey
	var err error
	switch keyTypeFor(path) {
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case "ecdsa":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("generate host key %s: %w", path, err)
	}
	if k, ok := priv.(ed25519.PrivateKey); ok {
		priv = &k // MarshalPrivateKey wants a pointer for ed25519
	}
	host, _ := os.Hostname()
	block, err := ssh.MarshalPrivateKey(priv, "tarn@"+host)
	if err != nil {
		return nil, fmt.Errorf("generate host key %s: %w", path, err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate host key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("generate host key %s: %w", path, err)
	}
	if err := writeExclusive(path, pem.EncodeToMemory(block), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process made it first: use theirs.
			return LoadHostKey(path)
		}
		return nil, fmt.Errorf("write host key %s: %w", path, err)
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	pub = append(pub[:len(pub)-1], []byte(" tarn@"+host+"\n")...)
	if err := os.WriteFile(path+".pub", pub, 0o644); err != nil {
		return nil, fmt.Errorf("write host key %s.pub: %w", path, err)
	}
	return signer, nil
}

// writeExclusive writes data to a temporary file beside path, syncs it and
// links it at path only if nothing is there (fs.ErrExist otherwise), so a
// reader never sees half a key.
func writeExclusive(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(perm); err != nil {
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
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return err
	}
	return nil
}

// Fingerprint is the SHA256 fingerprint OpenSSH shows for a host key
// ("SHA256:..."), with its type.
func Fingerprint(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}
