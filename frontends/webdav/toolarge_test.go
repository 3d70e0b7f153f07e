package webdav

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestPutTooLarge: a PUT whose Content-Length is more than the grid can
// store (the quota's Available) is answered 507 with "file too large"
// before its body is read (the client, sending Expect: 100-continue,
// sends none) and stores nothing; one within it is stored; without a
// length (chunked) nothing is refused up front.
func TestPutTooLarge(t *testing.T) {
	e := newEnv(t, envOpts{quota: func(context.Context) (Quota, error) {
		return Quota{Available: 1 << 20, Used: -1}, nil
	}})
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}}
	t.Cleanup(client.CloseIdleConnections)
	put := func(name string, size int, chunked bool) (int, string, int64) {
		t.Helper()
		body := &countingReader{r: bytes.NewReader(make([]byte, size))}
		var r io.Reader = body
		if chunked {
			r = io.MultiReader(body)
		}
		req, err := http.NewRequest("PUT", e.url+name, r)
		if err != nil {
			t.Fatal(err)
		}
		if !chunked {
			req.ContentLength = int64(size)
		}
		req.Header.Set("Expect", "100-continue")
		req.SetBasicAuth("alice", alicePW)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", name, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), body.n.Load()
	}
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"over.bin", 3 << 20, false, http.StatusInsufficientStorage},
		{"exact.bin", 1 << 20, false, http.StatusCreated},
		{"chunked.bin", 2 << 20, true, http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg, sent := put(tc.name, tc.size, tc.chunked)
			if status != tc.want {
				t.Fatalf("status %d %q, want %d", status, msg, tc.want)
			}
			got := e.alice(t, "GET", "/"+tc.name, nil, "")
			if tc.want != http.StatusInsufficientStorage {
				if got.status != http.StatusOK || len(got.body) != tc.size {
					t.Fatalf("GET after the PUT: %d, %d bytes", got.status, len(got.body))
				}
				return
			}
			if !strings.Contains(msg, "file too large: 3145728 bytes, the grid has room for 1048576") {
				t.Fatalf("507 says %q", msg)
			}
			if sent != 0 {
				t.Fatalf("the client sent %d bytes of the refused body", sent)
			}
			if got.status != http.StatusNotFound {
				t.Fatalf("GET of the refused file: %d", got.status)
			}
		})
	}
}
