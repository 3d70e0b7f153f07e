package nodelink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// FuzzCheckMembership feeds arbitrary grid membership proofs (the metadata
// value every RPC to a storage server or introducer carries) to
// CheckMembership on the TLS state of a real link. It must never panic;
// it must accept exactly the right proof and refuse everything else with
// PermissionDenied naming ErrNotMember.
func FuzzCheckMembership(f *testing.F) {
	secret := bytes.Repeat([]byte{0x42}, GridSecretSize)
	cs := linkState(f)
	kh, err := PeerKeyHash(cs)
	if err != nil {
		f.Fatal(err)
	}
	good, err := Proof(secret, cs, kh)
	if err != nil {
		f.Fatal(err)
	}
	goodB64 := base64.StdEncoding.EncodeToString(good)
	f.Add(goodB64, "", false)
	f.Add(goodB64[:len(goodB64)-1]+"A", "", false)
	f.Add("", "", true)
	f.Add("not base64!", goodB64, false)
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)), "", false)
	f.Add(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 5000)), "", false)
	f.Fuzz(func(t *testing.T, first, second string, none bool) {
		ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: cs}})
		md := metadata.MD{}
		if !none {
			md.Append(ProofMetadata, first)
			if second != "" {
				md.Append(ProofMetadata, second)
			}
		}
		ctx = metadata.NewIncomingContext(ctx, md)
		err := CheckMembership(ctx, secret)
		if !none && first == goodB64 {
			if err != nil {
				t.Fatalf("the right proof was refused: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("accepted proof %q (the right one is %q)", first, goodB64)
		}
		if st, ok := status.FromError(err); !ok || st.Code() != codes.PermissionDenied || !bytes.Contains([]byte(st.Message()), []byte(ErrNotMember.Error())) {
			t.Fatalf("refusal is not PermissionDenied naming ErrNotMember: %v", err)
		}
	})
}

// linkState runs one pinned TLS handshake over an in-memory pipe and
// returns the server side's view of it (the client's certificate, the
// exporter the proof binds to).
func linkState(tb testing.TB) tls.ConnectionState {
	tb.Helper()
	scert, ccert := newCert(tb), newCert(tb)
	cfg, err := ClientConfig(ccert, pinOf(tb, scert))
	if err != nil {
		tb.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, ServerConfig(scert))
	done := make(chan error, 1)
	go func() { done <- tls.Client(b, cfg).Handshake() }()
	if err := srv.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return srv.ConnectionState()
}
