//go:build acceptance

package acceptance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiOf is the local API URL and token of a running client node, from its
// node.json.
func apiOf(t testing.TB, n *Node) (string, string) {
	t.Helper()
	var info NodeInfo
	b, err := os.ReadFile(filepath.Join(n.Dir, "node.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil || info.APIURL == "" {
		t.Fatalf("%s: no API in node.json: %v", n.Name, err)
	}
	tok, err := os.ReadFile(info.TokenFile)
	if err != nil {
		t.Fatalf("%s: read API token: %v", n.Name, err)
	}
	return info.APIURL, strings.TrimSpace(string(tok))
}

func bytesDownloaded(t testing.TB, g *Grid) float64 {
	st, r := g.status(t, g.Client)
	if r.Code != 0 {
		t.Fatalf("status: %v", r)
	}
	v, _ := st.GridStats["BytesDownloaded"].(float64)
	return v
}

// TestRangeRead reads byte ranges of a 24 MiB file through the client's
// local HTTP API (Range requests, bearer token): the bytes are right and
// only the segments a range touches are fetched from the grid. Without
// the token the API answers 401.
func TestRangeRead(t *testing.T) {
	g := startGrid(t, GridOptions{})
	seg := segmentSize(t, g.Client)
	const size = 24 << 20
	data := genBytes(1100, size)
	c := g.mustPut(t, g.Client, bytes.NewReader(data))
	base, tok := apiOf(t, g.Client)
	fileURL := base + "/v1/file/" + url.PathEscape(c)

	t.Run("no token", func(t *testing.T) {
		resp, err := http.Get(fileURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET without the token: %s, want 401 or 403", resp.Status)
		}
	})

	cases := []struct {
		name     string
		from, to int64 // inclusive
	}{
		{"first byte", 0, 0},
		{"inside one segment", 10*seg + 100, 10*seg + 4195},
		{"across a segment boundary", 5*seg - 10, 5*seg + 9},
		{"last bytes", size - 77, size - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := bytesDownloaded(t, g)
			req, _ := http.NewRequest(http.MethodGet, fileURL, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", tc.from, tc.to))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("range request: %s, want 206", resp.Status)
			}
			if !bytes.Equal(got, data[tc.from:tc.to+1]) {
				t.Fatalf("range %d-%d: %d bytes that differ from the file's", tc.from, tc.to, len(got))
			}
			fetched := bytesDownloaded(t, g) - before
			segs := (tc.to/seg - tc.from/seg) + 1
			// K blocks of seg/K bytes per segment, plus hashes and headers.
			limit := float64(segs*seg) + float64(1<<20)
			if fetched > limit {
				t.Errorf("range of %d bytes over %d segments fetched %.0f share bytes, want at most %.0f", tc.to-tc.from+1, segs, fetched, limit)
			}
			t.Logf("range %d-%d: %.0f share bytes fetched", tc.from, tc.to, fetched)
		})
	}
}

// TestConcurrentTransfers runs several puts, then several gets, at once
// through one client node: every file comes back as it went in.
func TestConcurrentTransfers(t *testing.T) {
	g := startGrid(t, GridOptions{})
	const n = 6
	sizes := []int64{100, 1 << 20, 3<<20 + 1, 5 << 20, 64 << 10, 7<<20 - 3}
	caps := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, r := g.put(t, g.Client, newGen(uint64(1200+i), sizes[i]))
			if r.Code != 0 {
				errs <- fmt.Sprintf("put %d: %v", i, r)
				return
			}
			caps[i] = c
		}()
	}
	wg.Wait()
	for i := range n {
		if caps[i] == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum, got, r := g.getHash(t, g.Client, caps[i])
			if r.Code != 0 || got != sizes[i] || sum != genHash(uint64(1200+i), sizes[i]) {
				errs <- fmt.Sprintf("get %d: %d bytes (want %d), %v", i, got, sizes[i], r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d puts and %d gets at once in %v", n, n, time.Since(start).Round(time.Millisecond))
}

// TestSegmentSizes round-trips files through client nodes with the
// smallest segment size and with 16 MiB segments whose blocks (over 4 MiB)
// go through the codec plugin's gRPC fallback.
func TestSegmentSizes(t *testing.T) {
	g := startGrid(t, GridOptions{})
	cases := []struct {
		name, seg string
		fastPath  bool
		size      int64
	}{
		{"4KiB segments", "4KiB", true, 1<<20 + 333},
		{"16MiB segments, codec on the gRPC fallback", "16MiB", false, 40<<20 + 5},
		{"16MiB segments, codec on shared memory", "16MiB", true, 40<<20 + 5},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := g.addClient(t, fmt.Sprintf("client-seg-%d", i), GridOptions{SegmentSize: tc.seg, Edit: func(p string) string {
				return setTOML(p, "plugins.codec", "fast_path", fmt.Sprint(tc.fastPath))
			}})
			g.waitServers(t, n, len(g.Storage()), 60*time.Second)
			sent := newHashWriter()
			start := time.Now()
			c := g.mustPut(t, n, teeReader(newGen(uint64(1300+i), tc.size), sent))
			took := time.Since(start)
			sum, got, r := g.getHash(t, n, c)
			if r.Code != 0 || got != tc.size || sum != sent.Sum() {
				t.Fatalf("get: %d bytes (want %d) sha256 %s (want %s): %v", got, tc.size, sum, sent.Sum(), r)
			}
			t.Logf("put %d bytes in %v", tc.size, took.Round(time.Millisecond))
		})
	}
}
