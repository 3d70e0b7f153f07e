package webdav

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
)

// TestStartSelfSigned: a frontend with tls_self_signed makes its pair
// once, keeps it across starts, serves HTTPS that verifies against it for
// 127.0.0.1, and stops when its context ends.
func TestStartSelfSigned(t *testing.T) {
	e := newEnv(t, envOpts{})
	state := t.TempDir()
	start := func(ctx context.Context) *Server {
		t.Helper()
		s, err := Start(ctx, Options{
			Config:   conf.WebDAV{Enabled: true, Listen: "127.0.0.1:0", Prefix: "/dav/", TLSSelfSigned: true, Accounts: []string{"alice"}},
			Accounts: e.cfg.Accounts, DriveFor: e.cfg.DriveFor, StateDir: state,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := start(ctx)
	certPEM, err := os.ReadFile(filepath.Join(state, "webdav-selfsigned.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(state, "webdav-selfsigned.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/dav/") {
		t.Fatalf("URL %q", s.URL())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	for _, tc := range []struct {
		name, user, pw string
		want           int
	}{
		{"alice", "alice", alicePW, http.StatusMultiStatus},
		{"bob is not allowed here", "bob", bobPW, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("PROPFIND", s.URL(), nil)
			req.SetBasicAuth(tc.user, tc.pw)
			req.Header.Set("Depth", "0")
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("%d, want %d", res.StatusCode, tc.want)
			}
		})
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Get(s.URL()); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server still answers after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s2 := start(context.Background())
	defer s2.Close()
	again, _ := os.ReadFile(filepath.Join(state, "webdav-selfsigned.crt"))
	if !bytes.Equal(again, certPEM) {
		t.Fatal("a second start made a new certificate")
	}
}

func TestStartErrors(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		name string
		cfg  conf.WebDAV
		want string
	}{
		{"unknown account", conf.WebDAV{Listen: "127.0.0.1:0", Accounts: []string{"nobody"}}, `no account "nobody"`},
		{"bad apple_double", conf.WebDAV{Listen: "127.0.0.1:0", AppleDouble: "eat"}, "apple_double"},
		{"missing cert", conf.WebDAV{Listen: "127.0.0.1:0", TLSCert: "/nonexistent.crt", TLSKey: "/nonexistent.key"}, "tls_cert"},
		{"self-signed without state", conf.WebDAV{Listen: "127.0.0.1:0", TLSSelfSigned: true}, "state folder"},
		{"bad listen", conf.WebDAV{Listen: "127.0.0.1:99999"}, "listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(context.Background(), Options{Config: tc.cfg, Accounts: e.cfg.Accounts, DriveFor: e.cfg.DriveFor})
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
