package webdav

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestClearAnswers: answers a client shows its user say what went wrong
// with the status RFC 4918 gives it: MOVE under a missing or file parent
// is 409 (x/net/webdav said 403 "Forbidden"), a LOCK refresh without an
// If header says what it lacks.
func TestClearAnswers(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/f", nil, "x")
	e.must(t, http.StatusCreated, "MKCOL", "/d", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/d/g", nil, "y")
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
		says               string
	}{
		{"move file, missing parent", "MOVE", "/f", map[string]string{"Destination": "/no/such/f"}, http.StatusConflict, "parent collection does not exist"},
		{"move dir, missing parent", "MOVE", "/d", map[string]string{"Destination": "/no/d"}, http.StatusConflict, "parent collection does not exist"},
		{"move under a file", "MOVE", "/d", map[string]string{"Destination": "/f/d"}, http.StatusConflict, "parent collection does not exist"},
		{"copy file, missing parent", "COPY", "/f", map[string]string{"Destination": "/no/such/f"}, http.StatusConflict, ""},
		{"lock refresh without If", "LOCK", "/f", nil, http.StatusBadRequest, "If header"},
		{"move", "MOVE", "/d", map[string]string{"Destination": "/e"}, http.StatusCreated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(t, tc.want, tc.method, tc.path, tc.hdr, "")
			if !strings.Contains(r.body, tc.says) {
				t.Fatalf("%s %s: %q does not say %q", tc.method, tc.path, r.body, tc.says)
			}
		})
	}
	if g := e.must(t, http.StatusOK, "GET", "/e/g", nil, ""); g.body != "y" {
		t.Fatalf("moved file reads %q", g.body)
	}
	e.must(t, http.StatusOK, "GET", "/f", nil, "")
}

// TestMoveNeverLosesTheDestination: a MOVE whose source is gone (a
// client's retry of a MOVE that succeeded, or another client's move
// first) is 404 and leaves the destination as it was; x/net/webdav
// removed the destination first and then failed (403), deleting the file
// just moved there. Overwrite defaults to T; replacing works for files,
// folders and across kinds; locks hold.
func TestMoveNeverLosesTheDestination(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/a.txt", nil, "report")
	e.must(t, http.StatusCreated, "MOVE", "/a.txt", map[string]string{"Destination": "/b.txt", "Overwrite": "T"}, "")
	// The retry.
	r := e.must(t, http.StatusNotFound, "MOVE", "/a.txt", map[string]string{"Destination": "/b.txt", "Overwrite": "T"}, "")
	if !strings.Contains(r.body, "a.txt") {
		t.Fatalf("404 answer %q does not name the source", r.body)
	}
	if g := e.must(t, http.StatusOK, "GET", "/b.txt", nil, ""); g.body != "report" {
		t.Fatalf("the destination reads %q after a MOVE of a missing source", g.body)
	}

	e.must(t, http.StatusCreated, "PUT", "/c.txt", nil, "new")
	e.must(t, http.StatusPreconditionFailed, "MOVE", "/c.txt", map[string]string{"Destination": "/b.txt", "Overwrite": "F"}, "")
	e.must(t, http.StatusNoContent, "MOVE", "/c.txt", map[string]string{"Destination": "/b.txt"}, "") // no header: T
	if g := e.must(t, http.StatusOK, "GET", "/b.txt", nil, ""); g.body != "new" {
		t.Fatalf("replaced file reads %q", g.body)
	}
	e.must(t, http.StatusNotFound, "GET", "/c.txt", nil, "")

	// Folders over folders and files, files over folders.
	e.must(t, http.StatusCreated, "MKCOL", "/d1", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/d1/in1", nil, "1")
	e.must(t, http.StatusCreated, "MKCOL", "/d2", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/d2/in2", nil, "2")
	e.must(t, http.StatusNoContent, "MOVE", "/d1", map[string]string{"Destination": "/d2", "Overwrite": "T"}, "")
	e.must(t, http.StatusOK, "GET", "/d2/in1", nil, "")
	e.must(t, http.StatusNotFound, "GET", "/d2/in2", nil, "")
	e.must(t, http.StatusNoContent, "MOVE", "/d2", map[string]string{"Destination": "/b.txt"}, "")
	e.must(t, http.StatusOK, "GET", "/b.txt/in1", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/f", nil, "file")
	e.must(t, http.StatusNoContent, "MOVE", "/f", map[string]string{"Destination": "/b.txt"}, "")
	if g := e.must(t, http.StatusOK, "GET", "/b.txt", nil, ""); g.body != "file" {
		t.Fatalf("file over folder reads %q", g.body)
	}
	e.must(t, http.StatusBadRequest, "MOVE", "/b.txt", map[string]string{"Destination": "/x", "Depth": "0"}, "")

	// A locked source moves only with its token.
	tok := e.must(t, http.StatusOK, "LOCK", "/b.txt", map[string]string{"Timeout": "Second-60"},
		`<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>`).header.Get("Lock-Token")
	e.must(t, http.StatusLocked, "MOVE", "/b.txt", map[string]string{"Destination": "/moved"}, "")
	e.must(t, http.StatusLocked, "MOVE", "/b.txt", map[string]string{"Destination": "/moved", "If": "(<opaquelocktoken:wrong>)"}, "")
	e.must(t, http.StatusCreated, "MOVE", "/b.txt", map[string]string{"Destination": "/moved", "If": "(" + tok + ")"}, "")
	e.must(t, http.StatusOK, "GET", "/moved", nil, "")
	if r := e.do(t, "MOVE", "/moved", "reader", readerPW, map[string]string{"Destination": "/ro"}, nil); r.status != http.StatusForbidden {
		t.Fatalf("read-only MOVE: %d", r.status)
	}
}

// TestGridFailureIsRetryable: a change the grid fails (here an upload
// refused) is 503 with Retry-After, which clients retry, not 500.
func TestGridFailureIsRetryable(t *testing.T) {
	fs := &failingStore{}
	e := newEnv(t, envOpts{wrap: func(s vdrive.Store) vdrive.Store { fs.Store = s; return fs }})
	fs.failSize.Store(5000)
	for _, chunked := range []bool{false, true} {
		r := e.put(t, "/x", pseudo(5000), chunked)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("PUT with the grid failing (chunked %v): %d, Retry-After %q; want 503 with Retry-After", chunked, r.status, r.header.Get("Retry-After"))
		}
	}
	fs.failSize.Store(0)
	e.must(t, http.StatusCreated, "PUT", "/x", nil, string(pseudo(5000)))
}
