package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// SecretSize is the size of a node secret (convergence secret, grid secret).
const SecretSize = 32

// CreateSecret writes a new random 32-byte secret to path as 64 hex digits
// and a newline (mode 0600; the folder is made with mode 0700). It refuses
// to replace an existing file.
func CreateSecret(path string) ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("create secret %s: %w", path, err)
	}
	if err := WriteSecret(path, s); err != nil {
		return nil, err
	}
	return s, nil
}

// WriteSecret writes a given secret as CreateSecret does (to copy a grid's
// secret into a new node).
func WriteSecret(path string, s []byte) error {
	if len(s) != SecretSize {
		return fmt.Errorf("write secret %s: %d bytes, want %d", path, len(s), SecretSize)
	}
	if err := writeNew(path, []byte(hex.EncodeToString(s)+"\n")); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}

// LoadSecret reads a secret file, refusing one that group or others may
// read. It accepts what host/nodelink.ParseGridSecret accepts: 64 hex
// digits, 44 base64 characters (each optionally with a newline), or 32 raw
// bytes.
func LoadSecret(path string) ([]byte, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("load secret: %w", err)
	}
	s, err := ParseSecret(data)
	if err != nil {
		return nil, fmt.Errorf("load secret %s: %w", path, err)
	}
	return s, nil
}

// ParseSecret decodes the contents of a secret file.
func ParseSecret(data []byte) ([]byte, error) {
	if len(data) == SecretSize {
		return append([]byte(nil), data...), nil
	}
	t := strings.TrimRight(string(data), "\r\n")
	if len(t) == 2*SecretSize {
		if b, err := hex.DecodeString(t); err == nil {
			return b, nil
		}
	}
	if b, err := base64.StdEncoding.DecodeString(t); err == nil && len(b) == SecretSize {
		return b, nil
	}
	return nil, fmt.Errorf("want %d bytes as 64 hex digits, base64 or raw; got %d bytes of another form", SecretSize, len(data))
}
