package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCreateLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	id, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id.PrivateKey(), back.PrivateKey()) || id.KeyHash() != back.KeyHash() || id.NodeID() != back.NodeID() {
		t.Fatal("loaded identity differs from the created one")
	}
	if !regexp.MustCompile(`^[a-z2-7]{52}$`).MatchString(id.KeyHash()) {
		t.Fatalf("key hash %q: want 52 lowercase base32 characters", id.KeyHash())
	}
	if !regexp.MustCompile(`^v1-[a-z2-7]{26}$`).MatchString(id.NodeID()) || !strings.HasPrefix(id.KeyHash(), id.NodeID()[3:]) {
		t.Fatalf("node id %q does not derive from key hash %q", id.NodeID(), id.KeyHash())
	}
	msg := []byte("announcement")
	if !ed25519.Verify(back.Public(), msg, id.Sign(msg)) {
		t.Fatal("signature does not verify with the loaded public key")
	}
	other, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other.KeyHash() == id.KeyHash() {
		t.Fatal("two keys, one hash")
	}
}

func TestModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateSecret(filepath.Join(dir, PrivateDir, "grid.secret")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(dir, PrivateDir), 0o700 | os.ModeDir},
		{KeyPath(dir), 0o600},
		{filepath.Join(dir, PrivateDir, "grid.secret"), 0o600},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			st, err := os.Stat(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode() & (os.ModePerm | os.ModeDir); got != tc.want {
				t.Fatalf("mode %v, want %v", got, tc.want)
			}
		})
	}
	left, _ := filepath.Glob(filepath.Join(dir, PrivateDir, ".tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	data, _ := os.ReadFile(KeyPath(dir))
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Fatalf("key file is not PEM PKCS#8: %.40q", data)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	id, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, PrivateDir, "convergence.secret")
	if _, err := CreateSecret(secret); err != nil {
		t.Fatal(err)
	}

	t.Run("create over an existing key", func(t *testing.T) {
		if _, err := Create(dir); !errors.Is(err, ErrExist) {
			t.Fatalf("got %v, want ErrExist", err)
		}
		back, err := Load(dir)
		if err != nil || back.KeyHash() != id.KeyHash() {
			t.Fatal("the existing key was changed")
		}
	})
	t.Run("create over an existing secret", func(t *testing.T) {
		before, _ := os.ReadFile(secret)
		if _, err := CreateSecret(secret); !errors.Is(err, ErrExist) {
			t.Fatalf("got %v, want ErrExist", err)
		}
		after, _ := os.ReadFile(secret)
		if !bytes.Equal(before, after) {
			t.Fatal("the existing secret was changed")
		}
	})
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		t.Run("key mode "+mode.String(), func(t *testing.T) {
			if err := os.Chmod(KeyPath(dir), mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(KeyPath(dir), 0o600) })
			_, err := Load(dir)
			if !errors.Is(err, ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+KeyPath(dir)) {
				t.Fatalf("got %v, want ErrTooOpen naming the chmod", err)
			}
		})
	}
	t.Run("secret mode 0644", func(t *testing.T) {
		os.Chmod(secret, 0o644)
		t.Cleanup(func() { os.Chmod(secret, 0o600) })
		if _, err := LoadSecret(secret); !errors.Is(err, ErrTooOpen) {
			t.Fatalf("got %v, want ErrTooOpen", err)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		if _, err := Load(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v, want ErrNotExist", err)
		}
	})
	t.Run("garbage key", func(t *testing.T) {
		d := t.TempDir()
		os.Mkdir(filepath.Join(d, PrivateDir), 0o700)
		os.WriteFile(KeyPath(d), []byte("not pem"), 0o600)
		if _, err := Load(d); err == nil || !strings.Contains(err.Error(), "PEM") {
			t.Fatalf("got %v, want a PEM error", err)
		}
	})
}

func TestSecretRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "grid.secret")
	s, err := CreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadSecret(path)
	if err != nil || !bytes.Equal(s, back) || len(s) != SecretSize {
		t.Fatalf("round trip: %x vs %x, %v", s, back, err)
	}
	st, _ := os.Stat(filepath.Dir(path))
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("secret folder mode %v", st.Mode().Perm())
	}
}

func TestParseSecret(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, 32)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex", strings.Repeat("ab", 32) + "\n", true},
		{"hex crlf", strings.Repeat("ab", 32) + "\r\n", true},
		{"base64", "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", true},
		{"raw", string(raw), true},
		{"short hex", strings.Repeat("ab", 31), false},
		{"empty", "", false},
		{"bad hex", strings.Repeat("zz", 32), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSecret([]byte(tc.in))
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(got, raw) {
				t.Fatalf("got %x", got)
			}
		})
	}
}

// TestTLSPin runs a real TLS 1.3 handshake on loopback: each side checks
// that the peer's certificate hashes to the other's KeyHash, and a client
// pinning another key is refused.
func TestTLSPin(t *testing.T) {
	server, _ := Create(t.TempDir())
	client, _ := Create(t.TempDir())
	sc, err := server.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if got := SPKIHash(sc.Leaf); got != server.KeyHash() {
		t.Fatalf("SPKIHash %s != KeyHash %s", got, server.KeyHash())
	}
	if sc.Leaf.NotAfter.Year() != 9999 || sc.Leaf.NotBefore.After(time.Now()) {
		t.Fatalf("validity %v - %v", sc.Leaf.NotBefore, sc.Leaf.NotAfter)
	}
	cc, _ := client.TLSCertificate()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	gotClient := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{sc}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13})
				if tc.Handshake() == nil {
					gotClient <- SPKIHash(tc.ConnectionState().PeerCertificates[0])
					io.WriteString(tc, "hi")
				}
			}()
		}
	}()
	dial := func(pin string) error {
		cfg := &tls.Config{
			Certificates: []tls.Certificate{cc}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if h := SPKIHash(cs.PeerCertificates[0]); h != pin {
					return errors.New("key mismatch: " + h)
				}
				return nil
			},
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		b := make([]byte, 2)
		_, err = io.ReadFull(c, b)
		return err
	}
	if err := dial(server.KeyHash()); err != nil {
		t.Fatalf("pinned dial: %v", err)
	}
	if got := <-gotClient; got != client.KeyHash() {
		t.Fatalf("server saw client key %s, want %s", got, client.KeyHash())
	}
	if err := dial(client.KeyHash()); err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Fatalf("dial with the wrong pin: %v", err)
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSecret(data)
		if err == nil && len(s) != SecretSize {
			t.Fatalf("accepted a %d-byte secret", len(s))
		}
	})
}
