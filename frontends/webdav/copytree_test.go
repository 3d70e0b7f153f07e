package webdav

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/vdrive"
)

// TestCopyTree: a COPY of a collection copies every level (files by cap,
// empty folders, dead properties on files and folders), answers as RFC
// 4918 asks (201, 204 over an existing destination, 412 with Overwrite F,
// 409 without the parent, 423 onto a locked one), and costs a few folder
// changes per folder, not one or two per file.
func TestCopyTree(t *testing.T) {
	var cs *countingStore
	e := newEnv(t, envOpts{wrap: func(st vdrive.Store) vdrive.Store { cs = &countingStore{Store: st}; return cs }})
	const nfiles = 40
	e.must(t, http.StatusCreated, "MKCOL", "/src", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/src/sub", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/src/sub/empty", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/src/%C3%A9t%C3%A9%20%231", nil, "")
	want := map[string]string{}
	for i := 0; i < nfiles; i++ {
		p := fmt.Sprintf("/src/f%02d.txt", i)
		body := strings.Repeat(fmt.Sprint(i), i*1000)
		e.must(t, http.StatusCreated, "PUT", p, nil, body)
		want[p] = body
	}
	for p, body := range map[string]string{"/src/sub/deep.bin": string(pseudo(300_000)), "/src/%C3%A9t%C3%A9%20%231/z": "", "/src/sub/empty-file": ""} {
		e.must(t, http.StatusCreated, "PUT", p, nil, body)
		want[p] = body
	}
	prop := func(p, v string) {
		e.must(t, 207, "PROPPATCH", p, nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><z:color xmlns:z="urn:test">`+v+`</z:color></D:prop></D:set></D:propertyupdate>`)
	}
	prop("/src/f01.txt", "blue")
	prop("/src/sub", "green")

	before := e.costs(cs)
	e.must(t, http.StatusCreated, "COPY", "/src", map[string]string{"Destination": "/dst"}, "")
	used := e.costs(cs).minus(before)
	t.Logf("COPY of the tree: %s", used)
	// 4 folders: each made (a change of its parent) and, with files, one
	// link of them all; two entries with properties: one change each.
	if used.modify > 12 || used.upload != 0 {
		t.Errorf("COPY of 4 folders, %d files: %s; want at most 12 folder changes and no upload", nfiles+3, used)
	}
	for p, body := range want {
		q := "/dst" + strings.TrimPrefix(p, "/src")
		if g := e.must(t, http.StatusOK, "GET", q, nil, ""); g.body != body {
			t.Fatalf("GET %s: %d bytes, want %d", q, len(g.body), len(body))
		}
	}
	e.must(t, 207, "PROPFIND", "/dst/sub/empty", map[string]string{"Depth": "0"}, "")
	for p, v := range map[string]string{"/dst/f01.txt": "blue", "/dst/sub": "green"} {
		r := e.must(t, 207, "PROPFIND", p, map[string]string{"Depth": "0"},
			`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><z:color xmlns:z="urn:test"/></D:prop></D:propfind>`)
		if !strings.Contains(r.body, ">"+v+"<") {
			t.Errorf("%s: copied property %q missing:\n%s", p, v, r.body)
		}
	}
	// The copy is its own: changing the source leaves it.
	e.must(t, http.StatusNoContent, "PUT", "/src/f02.txt", nil, "changed")
	e.must(t, http.StatusNoContent, "DELETE", "/src/sub", nil, "")
	if g := e.must(t, http.StatusOK, "GET", "/dst/f02.txt", nil, ""); g.body != want["/src/f02.txt"] {
		t.Fatalf("the copy follows its source: %q", g.body)
	}
	e.must(t, http.StatusOK, "GET", "/dst/sub/deep.bin", nil, "")

	e.must(t, http.StatusCreated, "PUT", "/top.txt", nil, "top")
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"overwrite F", map[string]string{"Destination": "/dst", "Overwrite": "F"}, http.StatusPreconditionFailed},
		{"missing parent", map[string]string{"Destination": "/no/such/dst"}, http.StatusConflict},
		{"parent is a file", map[string]string{"Destination": "/top.txt/dst"}, http.StatusConflict},
		{"into itself", map[string]string{"Destination": "/src/sub2"}, http.StatusForbidden},
		{"bad depth", map[string]string{"Destination": "/x", "Depth": "1"}, http.StatusBadRequest},
		{"overwrite", map[string]string{"Destination": "/dst"}, http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.must(t, tc.want, "COPY", "/src", tc.hdr, "")
		})
	}
	// Overwriting replaced the whole destination: what the source lost is
	// gone from it.
	e.must(t, http.StatusNotFound, "GET", "/dst/sub/deep.bin", nil, "")
	if g := e.must(t, http.StatusOK, "GET", "/dst/f02.txt", nil, ""); g.body != "changed" {
		t.Fatalf("overwritten copy reads %q", g.body)
	}
	// Depth 0 makes the collection alone.
	e.must(t, http.StatusCreated, "COPY", "/src", map[string]string{"Destination": "/shallow", "Depth": "0"}, "")
	if hs := hrefs(t, e.must(t, 207, "PROPFIND", "/shallow", map[string]string{"Depth": "1"}, "").body); len(hs) != 1 {
		t.Fatalf("Depth 0 copy holds %v", hs)
	}

	// Locks: a locked destination needs its token.
	lock := e.must(t, http.StatusCreated, "LOCK", "/locked", map[string]string{"Timeout": "Second-60"},
		`<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>`)
	tok := lock.header.Get("Lock-Token")
	e.must(t, http.StatusLocked, "COPY", "/src", map[string]string{"Destination": "/locked"}, "")
	e.must(t, http.StatusPreconditionFailed, "COPY", "/src", map[string]string{"Destination": "/locked", "If": "(<opaquelocktoken:nope>)"}, "")
	e.must(t, http.StatusNoContent, "COPY", "/src", map[string]string{"Destination": "/locked", "If": "(" + tok + ")"}, "")
	e.must(t, http.StatusOK, "GET", "/locked/f05.txt", nil, "")

	// A read-only account copies nothing.
	if r := e.do(t, "COPY", "/src", "reader", readerPW, map[string]string{"Destination": "/ro"}, nil); r.status != http.StatusForbidden {
		t.Fatalf("read-only COPY: %d", r.status)
	}
}
