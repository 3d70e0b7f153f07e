package nodelink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// echoServer listens with cert and echoes, reporting each client's key hash.
func echoServer(t *testing.T, cert tls.Certificate) (addr string, peers chan string) {
	t.Helper()
	ctx := context.Background()
	ln, err := Listen(ctx, tcp, "tcp:127.0.0.1:0", cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	peers = make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					return
				}
				kh, _ := PeerKeyHash(tc.ConnectionState())
				peers <- kh
				io.Copy(tc, tc)
			}()
		}
	}()
	return "tarn://" + pinOf(t, cert) + "@" + ln.Addr().String(), peers
}

func TestDialPinned(t *testing.T) {
	server, client, mitm := newCert(t), newCert(t), newCert(t)
	addr, peers := echoServer(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("right key accepted, server learns client key", func(t *testing.T) {
		c, err := Dial(ctx, tcp, addr, client)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if cs := c.ConnectionState(); cs.Version != tls.VersionTLS13 {
			t.Fatalf("tls version %x, want 1.3", cs.Version)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q %v", buf, err)
		}
		if got := <-peers; got != pinOf(t, client) {
			t.Fatalf("server saw client %s, want %s", got, pinOf(t, client))
		}
	})

	t.Run("other key refused with expected and actual", func(t *testing.T) {
		// A man in the middle answers at the address with its own key.
		mitmAddr, _ := echoServer(t, mitm)
		a, _ := ParseAddr(mitmAddr)
		a.KeyHash = pinOf(t, server)
		_, err := DialAddr(ctx, tcp, a, client)
		if !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("err = %v, want ErrKeyMismatch", err)
		}
		for _, want := range []string{"expected " + pinOf(t, server), "actual " + pinOf(t, mitm)} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q lacks %q", err, want)
			}
		}
	})

	t.Run("falls through to the next transport address", func(t *testing.T) {
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadAddr := "tcp:" + dead.Addr().String()
		dead.Close()
		a, _ := ParseAddr(addr)
		a.Transports = append([]string{deadAddr}, a.Transports...)
		c, err := DialAddr(ctx, tcp, a, client)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		<-peers
	})

	t.Run("client without certificate refused by server", func(t *testing.T) {
		a, _ := ParseAddr(addr)
		raw, err := tcp.Dial(ctx, a.Transports[0])
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := ClientConfig(client, a.KeyHash)
		cfg.Certificates = nil
		c := tls.Client(raw, cfg)
		defer c.Close()
		// In TLS 1.3 the client learns of the refusal on its first read.
		err = c.HandshakeContext(ctx)
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			_, err = c.Read(make([]byte, 1))
		}
		if err == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	})
}

// grpcServer runs a health service behind nodelink, requiring grid
// membership when secret is set.
func grpcServer(t *testing.T, cert tls.Certificate, secret []byte) string {
	t.Helper()
	ln, err := tcp.Listen(context.Background(), "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if secret != nil {
		opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := CheckMembership(ctx, secret); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}))
	}
	srv := NewServer(cert, opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return "tarn://" + pinOf(t, cert) + "@" + ln.Addr().String()
}

func TestGRPCPinned(t *testing.T) {
	server, client, mitm := newCert(t), newCert(t), newCert(t)
	addr := grpcServer(t, server, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cc, err := DialGRPC(ctx, tcp, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("check over pinned link: %v", err)
	}

	mitmAddr := grpcServer(t, mitm, nil)
	a, _ := ParseAddr(mitmAddr)
	a.KeyHash = pinOf(t, server)
	_, err = DialGRPC(ctx, tcp, a.String(), client)
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "actual "+pinOf(t, mitm)) {
		t.Fatalf("dial of impostor: %v, want ErrKeyMismatch naming its key", err)
	}

	_, err = DialGRPC(ctx, tcp, "tarn://nope", client)
	if !errors.Is(err, ErrBadAddr) {
		t.Fatalf("bad address: %v", err)
	}
}

func TestGRPCMembership(t *testing.T) {
	secret := make([]byte, GridSecretSize)
	other := make([]byte, GridSecretSize)
	rand.Read(secret)
	rand.Read(other)
	server, client := newCert(t), newCert(t)
	addr := grpcServer(t, server, secret)

	tests := []struct {
		name    string
		secret  []byte
		code    codes.Code
		errPart string
	}{
		{"right secret", secret, codes.OK, ""},
		{"no proof", nil, codes.PermissionDenied, "sent no grid membership proof"},
		{"other grid", other, codes.PermissionDenied, "proved another grid secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var opts []grpc.DialOption
			if tc.secret != nil {
				p, err := GridProof(tc.secret, client)
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, grpc.WithPerRPCCredentials(p))
			}
			cc, err := DialGRPC(ctx, tcp, addr, client, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != tc.code || (tc.errPart != "" && !strings.Contains(err.Error(), tc.errPart)) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.errPart)
			}
		})
	}
}

func TestProofBoundToLink(t *testing.T) {
	// The same secret and client give different proofs on two links, so a
	// proof seen on one link is worthless on another.
	secret := make([]byte, GridSecretSize)
	server, client := newCert(t), newCert(t)
	addr, _ := echoServer(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var proofs [][]byte
	for range 2 {
		c, err := Dial(ctx, tcp, addr, client)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Proof(secret, c.ConnectionState(), pinOf(t, client))
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		proofs = append(proofs, p)
	}
	if string(proofs[0]) == string(proofs[1]) {
		t.Fatal("two links gave the same proof")
	}
}

func TestSilentClientDoesNotBlockOthers(t *testing.T) {
	server, client := newCert(t), newCert(t)
	addr := grpcServer(t, server, nil)
	a, _ := ParseAddr(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A client connects and never speaks.
	silent, err := tcp.Dial(ctx, a.Transports[0])
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cc, err := DialGRPC(ctx, tcp, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestParseGridSecret(t *testing.T) {
	raw := make([]byte, GridSecretSize)
	for i := range raw {
		raw[i] = byte(i)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"raw", string(raw), true},
		{"hex newline", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", true},
		{"base64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", true},
		{"short", "abc", false},
		{"bad hex", strings.Repeat("zz", 32), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseGridSecret([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && string(got) != string(raw) {
				t.Fatalf("got %x", got)
			}
		})
	}
}

func TestDialGRPCUnreachable(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tarn://" + testPin + "@tcp:" + dead.Addr().String()
	dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = DialGRPC(ctx, tcp, addr, newCert(t))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial of a closed port: %v, want connection refused", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dial of a closed port took %s", d)
	}
}

func FuzzParseGridSecret(f *testing.F) {
	f.Add([]byte("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"))
	f.Add([]byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="))
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseGridSecret(b)
		if err == nil && len(s) != GridSecretSize {
			t.Fatalf("accepted a %d-byte secret", len(s))
		}
	})
}

// TestProofCachedPerLink: the proof each end computes once per link is
// still checked on every RPC: on one link, calls proving the right
// secret pass, and a call in between proving another secret (per-call
// credentials) is refused, before and after the cache is filled.
func TestProofCachedPerLink(t *testing.T) {
	secret := make([]byte, GridSecretSize)
	other := make([]byte, GridSecretSize)
	rand.Read(secret)
	rand.Read(other)
	server, client := newCert(t), newCert(t)
	addr := grpcServer(t, server, secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	good, err := GridProof(secret, client)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := GridProof(other, client)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := DialGRPC(ctx, tcp, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	for i, tc := range []struct {
		creds credentials.PerRPCCredentials
		code  codes.Code
	}{{bad, codes.PermissionDenied}, {good, codes.OK}, {good, codes.OK}, {bad, codes.PermissionDenied}, {good, codes.OK}} {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.PerRPCCredentials(tc.creds))
		if status.Code(err) != tc.code {
			t.Fatalf("call %d: %v, want %v", i, err, tc.code)
		}
	}
}
