package webdav

import (
	"net/http"
	"strings"
	"testing"
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
