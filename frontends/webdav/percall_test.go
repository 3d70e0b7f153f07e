package webdav

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

// reads is what c read from the grid, or stored there, for a request of
// its own: folder reads (ReadMutable), file opens and uploads, share
// reads. Folder changes (Modify) are left out: a drive may write a link
// behind the PUT that made it, while later requests run.
func (c costs) reads() int64 {
	return c.readSlot + c.open + c.upload + c.shareReads
}

// TestPerFileGridCalls: what the requests rclone sends per file read from
// the grid once the folder is in the drive's cache: MKCOL of the existing
// folder and PROPFIND of a file just put nothing; a PUT no folder; a GET
// no more than the file's own read (one open, 3 share reads).
func TestPerFileGridCalls(t *testing.T) {
	cs := &countingStore{}
	e := newEnv(t, envOpts{wrap: func(s vdrive.Store) vdrive.Store { cs.Store = s; return cs }})
	e.must(t, http.StatusCreated, "MKCOL", "/up", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/up/sub", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/up/warm", nil, "w") // the folder is cached from here on
	data := string(pseudo(4096))
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   string
		status int
		check  func(t *testing.T, c costs)
	}{
		{"MKCOL of the existing folder", "MKCOL", "/up/", nil, "", http.StatusMethodNotAllowed, none},
		{"MKCOL of an existing subfolder", "MKCOL", "/up/sub", nil, "", http.StatusMethodNotAllowed, none},
		{"PUT of a new file", "PUT", "/up/f", nil, data, http.StatusCreated, func(t *testing.T, c costs) {
			if c.readSlot != 0 || c.upload != 1 || c.modify > 1 {
				t.Errorf("%s; want one upload and at most one folder change, no folder read", c)
			}
		}},
		{"PROPFIND Depth 1 of the file just put", "PROPFIND", "/up/f", map[string]string{"Depth": "1"}, "", http.StatusMultiStatus, none},
		{"PROPFIND Depth 0 of the file just put", "PROPFIND", "/up/f", map[string]string{"Depth": "0"}, "", http.StatusMultiStatus, none},
		{"HEAD of the file", "HEAD", "/up/f", nil, "", http.StatusOK, none},
		{"GET of the file", "GET", "/up/f", nil, "", http.StatusOK, func(t *testing.T, c costs) {
			if c.open != 1 || c.readSlot != 0 || c.upload != 0 || c.shareReads != 3 {
				t.Errorf("%s; want one open and 3 share reads, no folder read", c)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c0 := e.costs(cs)
			r := e.alice(t, tc.method, tc.path, tc.hdr, tc.body)
			if r.status != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
			}
			if tc.method == "GET" && r.body != data {
				t.Fatalf("GET returned %d bytes other than the %d put", len(r.body), len(data))
			}
			tc.check(t, e.costs(cs).minus(c0))
		})
	}
}

// none fails when the request read anything from the grid.
func none(t *testing.T, c costs) {
	t.Helper()
	if c.reads() != 0 {
		t.Errorf("%s; want no grid read", c)
	}
}

// TestMkcolFromCache: a MKCOL answered from the folder cache still makes
// a folder removed through this node at once, and one another node
// removed once the cache's second is over; a MKCOL of a file's name is
// 405 and of a name under a missing folder 409.
func TestMkcolFromCache(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.must(t, http.StatusCreated, "MKCOL", "/m", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/file", nil, "x")
	e.must(t, http.StatusMethodNotAllowed, "MKCOL", "/m/", nil, "")
	e.must(t, http.StatusMethodNotAllowed, "MKCOL", "/file", nil, "")
	e.must(t, http.StatusConflict, "MKCOL", "/missing/m", nil, "")
	e.must(t, http.StatusUnsupportedMediaType, "MKCOL", "/m", nil, "a body")

	// Removed through this node: the next MKCOL makes it again.
	e.must(t, http.StatusNoContent, "DELETE", "/m", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/m", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/m/a", nil, "a")

	// Removed through another node: within the cache's second a MKCOL
	// still answers 405 and a PUT is linked into the removed folder (not
	// reachable from the root); after it the PUT fails 409, and the
	// folder is made again, and a PUT lands in the new, empty folder.
	other, err := vdrive.New(e.store, e.root)
	if err != nil {
		t.Fatal(err)
	}
	e.must(t, http.StatusMultiStatus, "PROPFIND", "/", map[string]string{"Depth": "0"}, "") // the root is cached from here
	t0 := time.Now()
	if err := other.RemoveAll(ctx, "/m"); err != nil {
		t.Fatal(err)
	}
	early := e.alice(t, "MKCOL", "/m", nil, "")
	put := e.alice(t, "PUT", "/m/early", nil, "e")
	if time.Since(t0) < 800*time.Millisecond { // else the cache may have expired on a slow machine
		if early.status != http.StatusMethodNotAllowed || put.status != http.StatusCreated {
			t.Fatalf("within the cache's second: MKCOL %d, PUT %d; want 405, 201", early.status, put.status)
		}
		if _, err := other.Stat(ctx, "/m/early"); err == nil {
			t.Fatal("a PUT into the removed folder is reachable from the root")
		}
	}
	time.Sleep(1100 * time.Millisecond)
	e.must(t, http.StatusConflict, "PUT", "/m/late", nil, "l")
	e.must(t, http.StatusCreated, "MKCOL", "/m", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/m/b", nil, "b")
	r := e.must(t, http.StatusMultiStatus, "PROPFIND", "/m/", map[string]string{"Depth": "1"}, "")
	if h := hrefs(t, r.body); len(h) != 2 || !strings.HasSuffix(h[1], "/m/b") {
		t.Fatalf("/m lists %v, want only b", h)
	}
	if in, err := other.Stat(ctx, "/m/b"); err != nil || in.Size() != 1 {
		t.Fatalf("another node's stat of /m/b: %v", err)
	}
}
