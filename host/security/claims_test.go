// Package security holds cross-cutting tests of the claims in docs/security.md:
// each test runs the real packages on a test grid and checks one thing a
// party must not be able to do.
package security

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/storage"
)

const seg = 4096

var convergence = []byte("security-test convergence secret 0123456789")

func newClient(t *testing.T, g *testgrid.Grid) *grid.Client {
	t.Helper()
	c, err := grid.New(grid.Config{
		Transport:     g.Transport,
		Cert:          g.ClientCert(),
		GridSecret:    g.Secret,
		Codec:         codecreedsolomon.New(),
		Servers:       g.Source(),
		K:             3,
		H:             4,
		N:             5,
		SegmentSize:   seg,
		Convergence:   convergence,
		TempDir:       t.TempDir(),
		ServerTimeout: 2 * time.Second,
		Logger:        hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSharesHoldNoKeys uploads files with a known plaintext marker and scans
// every share on every server for the plaintext, the read key and the
// convergence secret: a storage server must learn none of them.
func TestSharesHoldNoKeys(t *testing.T) {
	g := testgrid.New(t, 5, nil)
	c := newClient(t, g)
	marker := []byte("TARN-SECURITY-MARKER-0123456789!")
	cases := []struct {
		name string
		size int
	}{
		{"one segment", seg - 7},
		{"many segments", 5*seg + 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat(marker, tc.size/len(marker)+1)[:tc.size]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cp, err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), nil)
			if err != nil {
				t.Fatal(err)
			}
			chk, ok := cp.(cap.CHK)
			if !ok {
				t.Fatalf("cap %s is a %s cap, want chk", cp, cp.Kind())
			}
			secrets := map[string][]byte{
				"plaintext":          marker[:16],
				"read key":           chk.Key[:],
				"convergence secret": convergence[:16],
			}
			scanned := 0
			for sh, srvs := range g.Holders(chk.StorageIndex()) {
				for _, i := range srvs {
					b, err := g.Servers[i].Backend.Share(storage.Ref{Index: chk.StorageIndex(), Num: uint32(sh)})
					if err != nil {
						t.Fatal(err)
					}
					scanned++
					for what, s := range secrets {
						if bytes.Contains(b, s) {
							t.Errorf("share %d on server %d holds the %s", sh, i, what)
						}
					}
				}
			}
			if scanned < 5 {
				t.Fatalf("scanned %d shares, want at least 5", scanned)
			}
			if _, err := c.Open(ctx, chk.Verify()); !errors.Is(err, grid.ErrNotReadable) {
				t.Fatalf("open of the verify cap: %v, want ErrNotReadable", err)
			}
		})
	}
}
