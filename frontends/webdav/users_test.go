package webdav

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// lockToken takes a LOCK answer's token.
func lockToken(r resp) string { return strings.Trim(r.header.Get("Lock-Token"), "<>") }

const exclusiveLock = `<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>office</D:owner></D:lockinfo>`

// TestLocksGoWithTheirResource: a DELETE or MOVE of a locked resource
// (with its token) destroys the lock (RFC 4918 9.6, 7.6). The lock used
// to stay at the old name, so a new file there was 423 for everyone but
// the holder until the lock timed out: Office deletes its "~$doc.docx"
// owner file with its token and makes it again at the next open.
func TestLocksGoWithTheirResource(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		name, method string
		hdr          map[string]string
		want         int
	}{
		{"delete", "DELETE", nil, http.StatusNoContent},
		{"move", "MOVE", map[string]string{"Destination": "/moved.txt"}, http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.must(t, http.StatusCreated, "PUT", "/~$doc.docx", nil, "owner file")
			tok := lockToken(e.must(t, http.StatusOK, "LOCK", "/~$doc.docx", map[string]string{"Depth": "0"}, exclusiveLock))
			hdr := map[string]string{"If": "(<" + tok + ">)"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			e.must(t, 423, tc.method, "/~$doc.docx", tc.hdr, "")
			e.must(t, tc.want, tc.method, "/~$doc.docx", hdr, "")
			// Anyone may make the name again, and change what moved.
			e.must(t, http.StatusCreated, "PUT", "/~$doc.docx", nil, "next open")
			if tc.method == "MOVE" {
				e.must(t, http.StatusNoContent, "PUT", "/moved.txt", nil, "not locked")
			}
			r := e.must(t, 207, "PROPFIND", "/~$doc.docx", map[string]string{"Depth": "0"},
				`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`)
			if strings.Contains(r.body, "activelock") {
				t.Fatalf("the new file shows the old lock:\n%s", r.body)
			}
			e.must(t, http.StatusNoContent, "DELETE", "/~$doc.docx", nil, "")
		})
	}
}

// TestLockedMemberGuardsItsTree: a DELETE or MOVE of a collection, or a
// COPY or MOVE that replaces one, removes its members; a locked member
// stops it (423 naming the member in DAV:lock-token-submitted) unless its
// token is submitted. A DELETE of the parent of Office's open document
// used to remove the document under its lock.
func TestLockedMemberGuardsItsTree(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/dav/"})
	e.must(t, http.StatusCreated, "MKCOL", "/dav/a", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/dav/a/b", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/dav/a/b/doc.docx", nil, "document")
	e.must(t, http.StatusCreated, "MKCOL", "/dav/other", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/dav/f.txt", nil, "f")
	tok := lockToken(e.must(t, http.StatusOK, "LOCK", "/dav/a/b/doc.docx", map[string]string{"Depth": "0"}, exclusiveLock))
	other := lockToken(e.must(t, http.StatusOK, "LOCK", "/dav/f.txt", map[string]string{"Depth": "0"}, exclusiveLock))
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
	}{
		{"delete", "DELETE", "/dav/a", nil},
		{"move away", "MOVE", "/dav/a", map[string]string{"Destination": "/dav/z"}},
		{"move over", "MOVE", "/dav/other", map[string]string{"Destination": "/dav/a"}},
		{"copy tree over", "COPY", "/dav/other", map[string]string{"Destination": "/dav/a"}},
		{"copy file over", "COPY", "/dav/f.txt", map[string]string{"Destination": "/dav/a"}},
		{"another lock's token", "DELETE", "/dav/a", map[string]string{"If": "</dav/f.txt> (<" + other + ">)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(t, 423, tc.method, tc.path, tc.hdr, "")
			if !strings.Contains(r.body, "<D:lock-token-submitted><D:href>/dav/a/b/doc.docx</D:href>") {
				t.Fatalf("423 does not name the locked member:\n%s", r.body)
			}
		})
	}
	if r := e.must(t, http.StatusOK, "GET", "/dav/a/b/doc.docx", nil, ""); r.body != "document" {
		t.Fatalf("the locked document reads %q", r.body)
	}
	// With the member's token (tagged with its URL, as clients send it,
	// here with the proxy's host) the tree goes, and the lock with it.
	e.must(t, http.StatusNoContent, "DELETE", "/dav/a", map[string]string{"If": "<https://dav.example.com/dav/a/b/doc.docx> (<" + tok + ">)"}, "")
	e.must(t, http.StatusCreated, "MKCOL", "/dav/a", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/dav/a/b", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/dav/a/b/doc.docx", nil, "no lock left")
}

// TestDestinationBehindProxy: behind a reverse proxy the client names the
// proxy's scheme and host in Destination and in If tags while this
// server sees its own Host. Only the path counts; a path outside the
// prefix is another namespace (502).
func TestDestinationBehindProxy(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/dav/"})
	e.must(t, http.StatusCreated, "PUT", "/dav/f.txt", nil, "f")
	for _, tc := range []struct {
		name, method, dest string
		want               int
	}{
		{"copy via proxy", "COPY", "https://dav.example.com/dav/copy.txt", http.StatusCreated},
		{"move via proxy", "MOVE", "https://dav.example.com:8443/dav/moved.txt", http.StatusCreated},
		{"outside the prefix", "COPY", "https://dav.example.com/other/x.txt", http.StatusBadGateway},
		{"outside the prefix, path only", "COPY", "/x.txt", http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "/dav/f.txt"
			if tc.method == "MOVE" {
				src = "/dav/copy.txt"
			}
			e.must(t, tc.want, tc.method, src, map[string]string{"Destination": tc.dest}, "")
		})
	}
	if r := e.must(t, http.StatusOK, "GET", "/dav/moved.txt", nil, ""); r.body != "f" {
		t.Fatalf("moved.txt = %q", r.body)
	}
	e.must(t, http.StatusNotFound, "GET", "/dav/copy.txt", nil, "")
	// neon tags If lists with the URL it was given: the proxy's.
	tok := lockToken(e.must(t, http.StatusOK, "LOCK", "/dav/moved.txt", map[string]string{"Depth": "0"}, exclusiveLock))
	e.must(t, http.StatusNoContent, "PUT", "/dav/moved.txt", map[string]string{"If": "<https://dav.example.com/dav/moved.txt> (<" + tok + ">)"}, "g")
}

// TestFinderChunkedPut: macOS Finder PUTs chunked with the size in
// X-Expected-Entity-Length. A size over the grid's room is 507 before
// the body; a body that does not end at the size stores nothing.
func TestFinderChunkedPut(t *testing.T) {
	e := newEnv(t, envOpts{quota: func(context.Context) (Quota, error) {
		return Quota{Available: 1 << 20, Used: -1}, nil
	}})
	finder := func(name string, body []byte, expected string) resp {
		t.Helper()
		req, err := http.NewRequest("PUT", e.url+name, io.MultiReader(bytes.NewReader(body))) // chunked
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Expected-Entity-Length", expected)
		req.Header.Set("User-Agent", "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)")
		req.SetBasicAuth("alice", alicePW)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", name, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return resp{res.StatusCode, res.Header, string(b)}
	}
	data := pseudo(300 << 10)
	for _, tc := range []struct {
		name     string
		body     []byte
		expected string
		want     int
		msg      string
	}{
		{"right size", data, "307200", http.StatusCreated, ""},
		{"empty", nil, "0", http.StatusCreated, ""},
		{"too large for the grid", data, "3145728", http.StatusInsufficientStorage, "file too large: 3145728 bytes, the grid has room for 1048576"},
		{"body short", data[:1000], "307200", http.StatusBadRequest, "body of 1000 bytes, X-Expected-Entity-Length said 307200"},
		{"body long", data, "1000", http.StatusBadRequest, "body of 307200 bytes, X-Expected-Entity-Length said 1000"},
		{"header not a number", data[:10], "ten", http.StatusCreated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			r := finder(name, tc.body, tc.expected)
			if r.status != tc.want || !strings.Contains(r.body, tc.msg) {
				t.Fatalf("%d %q, want %d %q", r.status, r.body, tc.want, tc.msg)
			}
			got := e.alice(t, "GET", "/"+name, nil, "")
			if tc.want != http.StatusCreated {
				if got.status != http.StatusNotFound {
					t.Fatalf("a refused PUT left a file: GET %d", got.status)
				}
				return
			}
			if got.status != http.StatusOK || got.body != string(tc.body) {
				t.Fatalf("GET: %d, %d bytes, want %d", got.status, len(got.body), len(tc.body))
			}
		})
	}
}

// TestPreconditionsOnChanges: If-Match and If-None-Match hold for every
// change, not only PUT: a DELETE or MOVE guarded by the ETag a client
// saw does nothing once the file changed (x/net/webdav ignored both and
// deleted it).
func TestPreconditionsOnChanges(t *testing.T) {
	e := newEnv(t, envOpts{})
	etag := e.must(t, http.StatusCreated, "PUT", "/f.txt", nil, "one").header.Get("ETag")
	e.must(t, http.StatusNoContent, "PUT", "/f.txt", nil, "two") // changed since the client looked
	now := e.must(t, http.StatusOK, "HEAD", "/f.txt", nil, "").header.Get("ETag")
	if etag == "" || now == etag {
		t.Fatalf("ETags %q then %q", etag, now)
	}
	const patch = `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:a xmlns:x="urn:x">1</x:a></D:prop></D:set></D:propertyupdate>`
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		want               int
	}{
		{"delete stale", "DELETE", "/f.txt", map[string]string{"If-Match": etag}, "", http.StatusPreconditionFailed},
		{"move stale", "MOVE", "/f.txt", map[string]string{"If-Match": etag, "Destination": "/g.txt"}, "", http.StatusPreconditionFailed},
		{"copy stale", "COPY", "/f.txt", map[string]string{"If-Match": etag, "Destination": "/g.txt"}, "", http.StatusPreconditionFailed},
		{"proppatch stale", "PROPPATCH", "/f.txt", map[string]string{"If-Match": etag}, patch, http.StatusPreconditionFailed},
		{"move if none match any", "MOVE", "/f.txt", map[string]string{"If-None-Match": "*", "Destination": "/g.txt"}, "", http.StatusPreconditionFailed},
		{"delete missing if match any", "DELETE", "/gone.txt", map[string]string{"If-Match": "*"}, "", http.StatusPreconditionFailed},
		{"lock unmapped if match any", "LOCK", "/new.txt", map[string]string{"If-Match": "*"}, exclusiveLock, http.StatusPreconditionFailed},
		{"copy current", "COPY", "/f.txt", map[string]string{"If-Match": now, "Destination": "/g.txt"}, "", http.StatusCreated},
		{"delete current", "DELETE", "/g.txt", map[string]string{"If-Match": `"other", ` + now}, "", http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.must(t, tc.want, tc.method, tc.path, tc.hdr, tc.body)
		})
	}
	if r := e.must(t, http.StatusOK, "GET", "/f.txt", nil, ""); r.body != "two" {
		t.Fatalf("f.txt = %q", r.body)
	}
	e.must(t, http.StatusNotFound, "GET", "/new.txt", nil, "")
	e.must(t, http.StatusNotFound, "GET", "/g.txt", nil, "")
}

// TestOptionsForWindows: Windows' client sends OPTIONS of the server's
// root, without credentials, before it maps a URL; without a DAV header
// in the answer the mapping fails (0x80070043). The answer names the
// server's methods and looks nothing up; every other method still needs
// a login.
func TestOptionsForWindows(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/dav/"})
	e.must(t, http.StatusCreated, "PUT", "/dav/f.txt", nil, "x")
	for _, tc := range []struct {
		name, method, path, user, pw string
		want                         int
		dav                          bool
	}{
		{"root without credentials", "OPTIONS", "/", "", "", http.StatusOK, true},
		{"prefix without credentials", "OPTIONS", "/dav/", "", "", http.StatusOK, true},
		{"a file without credentials", "OPTIONS", "/dav/f.txt", "", "", http.StatusOK, true},
		{"root outside the prefix, logged in", "OPTIONS", "/", "alice", alicePW, http.StatusOK, true},
		{"prefix logged in", "OPTIONS", "/dav/", "alice", alicePW, http.StatusOK, true},
		{"wrong password", "OPTIONS", "/dav/", "alice", "nope", http.StatusUnauthorized, false},
		{"propfind without credentials", "PROPFIND", "/dav/", "", "", http.StatusUnauthorized, false},
		{"get outside the prefix", "GET", "/", "alice", alicePW, http.StatusNotFound, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.user, tc.pw, map[string]string{"User-Agent": "DavClnt", "Depth": "0"}, nil)
			if r.status != tc.want {
				t.Fatalf("%d %s, want %d", r.status, strings.TrimSpace(r.body), tc.want)
			}
			if got := r.header.Get("DAV") == "1, 2" && r.header.Get("MS-Author-Via") == "DAV"; got != tc.dav {
				t.Fatalf("DAV %q, MS-Author-Via %q", r.header.Get("DAV"), r.header.Get("MS-Author-Via"))
			}
		})
	}
	// Without credentials the answer is the same for a file and for
	// nothing at all.
	a := e.do(t, "OPTIONS", "/dav/f.txt", "", "", nil, nil).header.Get("Allow")
	b := e.do(t, "OPTIONS", "/dav/none.txt", "", "", nil, nil).header.Get("Allow")
	if a != b || !strings.Contains(a, "PROPFIND") {
		t.Fatalf("Allow %q for a file, %q for nothing", a, b)
	}
}

// TestPathThroughAFile: a path whose parent is a file names nothing. A
// look-up there is 404 (PROPFIND and DELETE said 409, PROPPATCH 405); a
// change that needs the parent collection is 409 (MKCOL said 405, which
// rclone reads as "the folder exists", and a file COPY 403).
func TestPathThroughAFile(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/f.txt", nil, "x")
	e.must(t, http.StatusCreated, "PUT", "/g.txt", nil, "y")
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		body         string
		want         int
	}{
		{"GET", "/f.txt/x", nil, "", http.StatusNotFound},
		{"PROPFIND", "/f.txt/x", map[string]string{"Depth": "0"}, "", http.StatusNotFound},
		{"PROPPATCH", "/f.txt/x", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:a xmlns:x="urn:x">1</x:a></D:prop></D:set></D:propertyupdate>`, http.StatusNotFound},
		{"DELETE", "/f.txt/x", nil, "", http.StatusNotFound},
		{"MKCOL", "/f.txt/d", nil, "", http.StatusConflict},
		{"PUT", "/f.txt/x", nil, "z", http.StatusConflict},
		{"COPY", "/g.txt", map[string]string{"Destination": "/f.txt/x"}, "", http.StatusConflict},
		{"MOVE", "/g.txt", map[string]string{"Destination": "/f.txt/x"}, "", http.StatusConflict},
		{"LOCK", "/f.txt/x", nil, exclusiveLock, http.StatusConflict},
	} {
		t.Run(tc.method, func(t *testing.T) {
			e.must(t, tc.want, tc.method, tc.path, tc.hdr, tc.body)
		})
	}
	for name, want := range map[string]string{"/f.txt": "x", "/g.txt": "y"} {
		if r := e.must(t, http.StatusOK, "GET", name, nil, ""); r.body != want {
			t.Fatalf("%s = %q", name, r.body)
		}
	}
}

// FuzzExpectedLength: the size a PUT announces is its Content-Length, or
// a non-negative X-Expected-Entity-Length that parses, or -1.
func FuzzExpectedLength(f *testing.F) {
	for _, s := range []string{"307200", "0", "", " 12 ", "-1", "ten", "99999999999999999999", "+5"} {
		f.Add(int64(-1), s)
	}
	f.Add(int64(10), "5")
	f.Fuzz(func(t *testing.T, cl int64, h string) {
		r := &http.Request{ContentLength: cl, Header: http.Header{}}
		r.Header.Set("X-Expected-Entity-Length", h)
		got := expectedLength(r)
		switch {
		case cl >= 0 && got != cl:
			t.Fatalf("Content-Length %d, got %d", cl, got)
		case got < -1:
			t.Fatalf("got %d", got)
		case cl < 0 && got >= 0:
			if n, err := strconv.ParseInt(strings.TrimSpace(r.Header.Get("X-Expected-Entity-Length")), 10, 64); err != nil || n != got {
				t.Fatalf("header %q gave %d", h, got)
			}
		}
	})
}

// TestOptionsAllow: a logged-in OPTIONS lists what can work on the
// resource for this account: GET and HEAD on a collection (it answers a
// listing), no change for a read-only account.
func TestOptionsAllow(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "MKCOL", "/d", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/f.txt", nil, "x")
	for _, tc := range []struct {
		name, user, pw, path, want string
	}{
		{"collection", "alice", alicePW, "/d", "OPTIONS, LOCK, GET, HEAD, DELETE, PROPPATCH, COPY, MOVE, UNLOCK, PROPFIND"},
		{"root", "alice", alicePW, "/", "OPTIONS, LOCK, GET, HEAD, DELETE, PROPPATCH, COPY, MOVE, UNLOCK, PROPFIND"},
		{"file", "alice", alicePW, "/f.txt", "OPTIONS, LOCK, GET, HEAD, POST, DELETE, PROPPATCH, COPY, MOVE, UNLOCK, PROPFIND, PUT"},
		{"nothing", "alice", alicePW, "/none", "OPTIONS, LOCK, PUT, MKCOL"},
		{"read-only collection", "reader", readerPW, "/d", "OPTIONS, GET, HEAD, PROPFIND"},
		{"read-only file", "reader", readerPW, "/f.txt", "OPTIONS, GET, HEAD, PROPFIND"},
		{"read-only nothing", "reader", readerPW, "/none", "OPTIONS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "OPTIONS", tc.path, tc.user, tc.pw, nil, nil)
			if r.status != http.StatusOK || r.header.Get("Allow") != tc.want || r.header.Get("DAV") != "1, 2" {
				t.Fatalf("%d Allow %q DAV %q, want Allow %q", r.status, r.header.Get("Allow"), r.header.Get("DAV"), tc.want)
			}
		})
	}
	// A collection's GET does answer.
	if r := e.must(t, http.StatusOK, "GET", "/d", nil, ""); !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET of a collection: %q", r.header.Get("Content-Type"))
	}
}
