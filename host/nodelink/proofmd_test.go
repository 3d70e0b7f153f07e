package nodelink

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"reflect"
	"testing"
	"time"
)

// TestProofMetadataPerLink: the proof metadata of a link is built once
// (the same map on every call) and carries base64(Proof) of the secret
// asked for; another secret gets its own value, and the first one's is
// right again after.
func TestProofMetadataPerLink(t *testing.T) {
	server, client := newCert(t), newCert(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := Listen(ctx, tcp, "tcp:127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1)) // runs the handshake; waits for the close
		}
	}()
	conn, err := Dial(ctx, tcp, "tarn://"+pinOf(t, server)+"@"+ln.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l := newLinkInfo(conn)
	kh := pinOf(t, client)
	a, b := make([]byte, GridSecretSize), make([]byte, GridSecretSize)
	rand.Read(a)
	rand.Read(b)
	want := func(secret []byte) string {
		p, err := Proof(secret, conn.ConnectionState(), kh)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(p)
	}
	cases := []struct {
		name   string
		secret []byte
		same   bool // the same map as the call before
	}{
		{"first", a, false},
		{"again", a, true},
		{"another secret", b, false},
		{"first secret again", a, false},
		{"and again", a, true},
	}
	var last map[string]string
	for _, tc := range cases {
		md, err := l.proofMetadata(tc.secret, kh)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(md) != 1 || md[ProofMetadata] != want(tc.secret) {
			t.Fatalf("%s: metadata %v, want %s = %s", tc.name, md, ProofMetadata, want(tc.secret))
		}
		if same := last != nil && reflect.ValueOf(md).Pointer() == reflect.ValueOf(last).Pointer(); same != tc.same {
			t.Fatalf("%s: same map as before %v, want %v", tc.name, same, tc.same)
		}
		last = md
	}
}
