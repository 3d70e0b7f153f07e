//go:build acceptance

package acceptance

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/cap"
)

// segmentSize is the client node's segment size, read from its profile.
func segmentSize(t testing.TB, n *Node) int64 {
	t.Helper()
	p, err := conf.Load(n.Dir)
	if err != nil {
		t.Fatalf("load %s profile: %v", n.Name, err)
	}
	return int64(p.Client.SegmentSize)
}

// storageIndex is the hex storage index of a CHK read cap.
func storageIndex(t testing.TB, s string) string {
	t.Helper()
	c, err := cap.Parse(s)
	if err != nil {
		t.Fatalf("parse cap %q: %v", s, err)
	}
	chk, ok := c.(cap.CHK)
	if !ok {
		t.Fatalf("cap %q is a %s, not a CHK read cap", s, c.Kind())
	}
	si := chk.StorageIndex()
	return hex.EncodeToString(si[:])
}

// TestRoundTrip stores files of every size class through `tarn put -` and
// reads them back with `tarn get CAP -` on a grid of separate processes,
// comparing SHA-256: empty, one byte, the literal limit and one over, a
// segment less one, a segment, a segment and one, and a file of 100 MiB.
func TestRoundTrip(t *testing.T) {
	g := startGrid(t, GridOptions{})
	seg := segmentSize(t, g.Client)
	cases := []struct {
		name    string
		size    int64
		literal bool
	}{
		{"empty", 0, true},
		{"one byte", 1, true},
		{"literal limit", cap.LiteralMax, true},
		{"literal limit plus one", cap.LiteralMax + 1, false},
		{"segment minus one", seg - 1, false},
		{"segment", seg, false},
		{"segment plus one", seg + 1, false},
		{"multi-segment 100 MiB", 100<<20 + 12345, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(1000 + i)
			before := g.indexes()
			sent := newHashWriter()
			start := time.Now()
			c := g.mustPut(t, g.Client, teeReader(newGen(seed, tc.size), sent))
			upTook := time.Since(start)
			if sent.n != tc.size {
				t.Fatalf("generator gave %d bytes, want %d", sent.n, tc.size)
			}
			wantPrefix := "tarn:chk:"
			if tc.literal {
				wantPrefix = "tarn:lit:"
			}
			if !strings.HasPrefix(c, wantPrefix) {
				t.Errorf("cap of %d bytes = %q, want prefix %q", tc.size, c, wantPrefix)
			}
			after := g.indexes()
			if tc.literal && len(after) != len(before) {
				t.Errorf("a literal file touched the servers: %d storage indexes before, %d after", len(before), len(after))
			}
			if !tc.literal {
				si := storageIndex(t, c)
				if got := len(g.allShares(si)); got != 5 {
					t.Errorf("%d shares of %s on the storage nodes, want 5 (N)", got, si)
				}
			}
			start = time.Now()
			sum, n, r := g.getHash(t, g.Client, c)
			downTook := time.Since(start)
			if r.Code != 0 {
				t.Fatalf("get: %v", r)
			}
			if n != tc.size || sum != sent.Sum() {
				t.Fatalf("get returned %d bytes sha256 %s, want %d bytes sha256 %s", n, sum, tc.size, sent.Sum())
			}
			if tc.size >= 64<<20 {
				figure(t, "put %d MiB in %v (%.1f MiB/s, CLI to grid), get in %v (%.1f MiB/s)",
					tc.size>>20, upTook.Round(time.Millisecond), mbps(tc.size, upTook),
					downTook.Round(time.Millisecond), mbps(tc.size, downTook))
			}
		})
	}

	// The CLI's file forms: tarn put FILE and tarn get CAP OUT.
	t.Run("file arguments", func(t *testing.T) {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.bin")
		data := genBytes(77, 3*seg+17)
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r := mustTarn(t, CLI{}, "put", "--node", g.Client.Dir, in)
		c := strings.TrimSpace(r.Stdout)
		// Piped, not a terminal: the cap alone on stdout, no progress bar.
		if strings.Count(r.Stdout, "\n") != 1 || r.Stderr != "" {
			t.Errorf("put to a pipe printed stdout %q and stderr %q; want the cap alone", r.Stdout, r.Stderr)
		}
		out := filepath.Join(dir, "out.bin")
		if r := mustTarn(t, CLI{}, "get", "--node", g.Client.Dir, c, out); r.Stdout != "" || r.Stderr != "" {
			t.Errorf("get to a file, piped, printed stdout %q and stderr %q; want nothing", r.Stdout, r.Stderr)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("tarn get %s wrote %d bytes that differ from the %d put", out, len(got), len(data))
		}
		// The cap of the same bytes from stdin is the same.
		if c2 := g.mustPut(t, g.Client, bytes.NewReader(data)); c2 != c {
			t.Errorf("put FILE gave %s, put - gave %s", c, c2)
		}
	})
}

// TestConvergence: the same file and secret give the same cap; a client
// with another convergence secret gets another cap and another storage
// index for the same bytes, and each client reads the other's file.
func TestConvergence(t *testing.T) {
	g := startGrid(t, GridOptions{})
	data := genBytes(42, 2<<20+333)
	c1 := g.mustPut(t, g.Client, bytes.NewReader(data))
	c1again := g.mustPut(t, g.Client, bytes.NewReader(data))
	if c1 != c1again {
		t.Errorf("same file, same client: caps differ:\n%s\n%s", c1, c1again)
	}
	si1 := storageIndex(t, c1)

	other := g.addClient(t, "client-2", GridOptions{})
	g.waitServers(t, other, len(g.Storage()), 60*time.Second)
	s1, err := os.ReadFile(filepath.Join(g.Client.Dir, "private", "convergence.secret"))
	s2, err2 := os.ReadFile(filepath.Join(other.Dir, "private", "convergence.secret"))
	if err != nil || err2 != nil {
		t.Logf("cannot read the convergence secrets (%v, %v): relying on tarn init making a new one", err, err2)
	} else if bytes.Equal(s1, s2) {
		t.Fatalf("the second client has the same convergence secret as the first")
	}
	c2 := g.mustPut(t, other, bytes.NewReader(data))
	if c2 == c1 {
		t.Fatalf("another convergence secret gave the same cap %s", c2)
	}
	si2 := storageIndex(t, c2)
	if si1 == si2 {
		t.Fatalf("another convergence secret gave the same storage index %s", si1)
	}
	for _, si := range []string{si1, si2} {
		if n := len(g.allShares(si)); n != 5 {
			t.Errorf("storage index %s: %d shares on disk, want 5", si, n)
		}
	}
	t.Run("random keys: same file, other cap", func(t *testing.T) {
		n := g.addClient(t, "client-random", GridOptions{Edit: func(p string) string {
			return setTOML(p, "client", "convergence", `"random"`)
		}})
		g.waitServers(t, n, len(g.Storage()), 60*time.Second)
		a := g.mustPut(t, n, bytes.NewReader(data))
		b := g.mustPut(t, n, bytes.NewReader(data))
		if a == b || storageIndex(t, a) == storageIndex(t, b) {
			t.Errorf("convergence = random gave the same cap or storage index twice: %s, %s", a, b)
		}
		for _, c := range []string{a, b} {
			var out bytes.Buffer
			if r := g.get(t, g.Client, c, &out); r.Code != 0 || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("get of a random-key upload: %v", r)
			}
		}
	})
	for _, tc := range []struct {
		name string
		node *Node
		cap  string
	}{
		{"client reads its own", g.Client, c1},
		{"client reads the other's", g.Client, c2},
		{"client-2 reads its own", other, c2},
		{"client-2 reads the other's", other, c1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if r := g.get(t, tc.node, tc.cap, &out); r.Code != 0 {
				t.Fatalf("get: %v", r)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("got %d bytes that differ from the %d put", out.Len(), len(data))
			}
		})
	}
}
