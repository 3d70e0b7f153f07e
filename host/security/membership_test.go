package security

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
)

// TestWrongGridSecretSaysRefused: a client whose grid secret is not the
// servers' can neither upload nor download, and the error, once explained
// by the grid client, says the servers refused this node's membership and
// names the grid and the setting to check, instead of only "0 of 5 servers
// answered". It still matches ErrNotHappy / ErrNotEnoughShares and
// nodelink.ErrNotMember.
func TestWrongGridSecretSaysRefused(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	member := newClient(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := bytes.Repeat([]byte("membership "), 2000)
	good, err := member.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, nodelink.GridSecretSize)
	rand.Read(wrong)
	outsider := func(t *testing.T, convergence []byte) *grid.Client {
		c, err := grid.New(grid.Config{
			Transport: g.Transport, Cert: g.ClientCert(), GridSecret: wrong, GridName: "prod",
			Codec: codecreedsolomon.New(), Servers: g.Source(), K: 3, H: 4, N: 5,
			SegmentSize: seg, Convergence: convergence, TempDir: t.TempDir(),
			ServerTimeout: 2 * time.Second, Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	want := `refused this node: not a member of grid "prod" (check grid.secret_file)`
	check := func(t *testing.T, c *grid.Client, err error, sentinel error) {
		t.Helper()
		if err == nil {
			t.Fatal("an outsider succeeded")
		}
		if got := len(c.Refusals()); got != 5 {
			t.Errorf("%d servers recorded as refusing, want 5", got)
		}
		ex := c.Explain(err)
		if !strings.Contains(ex.Error(), want) || !strings.Contains(ex.Error(), "storage server ") {
			t.Fatalf("explained error %q does not say %q", ex, want)
		}
		if !errors.Is(ex, sentinel) || !errors.Is(ex, nodelink.ErrNotMember) {
			t.Fatalf("explained error %q lost its sentinels", ex)
		}
		if strings.Count(ex.Error(), "\n") > 0 {
			t.Fatalf("explained error is not one line: %q", ex)
		}
		t.Logf("%v", ex)
	}
	cases := []struct {
		name        string
		convergence []byte
	}{
		{"upload with convergent keys", convergence},
		{"upload with random keys", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := outsider(t, tc.convergence)
			_, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
			check(t, c, err, grid.ErrNotHappy)
		})
	}
	t.Run("download", func(t *testing.T) {
		c := outsider(t, nil)
		f, err := c.Open(ctx, good)
		if err == nil {
			_, err = io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		}
		check(t, c, err, grid.ErrNotEnoughShares)
	})
	t.Run("other errors unchanged", func(t *testing.T) {
		c := outsider(t, nil)
		plain := errors.New("disk on fire")
		if c.Explain(plain) != plain || member.Explain(grid.ErrNotHappy) != grid.ErrNotHappy {
			t.Fatal("Explain changed an error no refusal caused")
		}
	})
}

// TestManInTheMiddleSaysRefused: a server entry whose address is one
// server's but whose key hash is another's (what a man in the middle with a
// key of his own looks like) is never used, and the explained error says
// the key did not match, with both key hashes.
func TestManInTheMiddleSaysRefused(t *testing.T) {
	g := testgrid.New(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	real, err := nodelink.ParseAddr(g.Servers[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	other, err := nodelink.ParseAddr(g.Servers[1].Addr)
	if err != nil {
		t.Fatal(err)
	}
	mitm := real
	mitm.KeyHash = other.KeyHash // the pin says server 1; server 0 answers
	c, err := grid.New(grid.Config{
		Transport: g.Transport, Cert: g.ClientCert(), GridSecret: g.Secret,
		Codec: codecreedsolomon.New(), Servers: grid.StaticServers{{Addr: mitm.String()}}, K: 1, H: 1, N: 1,
		SegmentSize: seg, TempDir: t.TempDir(), ServerTimeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := bytes.Repeat([]byte("mitm "), 2000)
	_, err = c.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
	if err == nil {
		t.Fatal("an upload went to a server that presented another key than pinned")
	}
	ex := c.Explain(err)
	if !errors.Is(ex, nodelink.ErrKeyMismatch) || !errors.Is(ex, grid.ErrNotHappy) {
		t.Fatalf("explained error %q does not match ErrKeyMismatch and ErrNotHappy", ex)
	}
	for _, want := range []string{"does not match the pinned key hash", other.KeyHash, real.KeyHash, "someone in the way"} {
		if !strings.Contains(ex.Error(), want) {
			t.Errorf("explained error %q does not say %q", ex, want)
		}
	}
	if st := g.Servers[0].Stats(); st.Sealed != 0 || st.OpenUploads != 0 {
		t.Fatalf("the server behind the wrong pin took shares: %+v", st)
	}
	t.Logf("%v", ex)
}
