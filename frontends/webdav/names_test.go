package webdav

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestNewNameTooLong: a new name over 255 bytes (UTF-8, NFC) is refused
// with 400 Bad Request and a body naming its length and the limit, for
// PUT, MKCOL (x/net/webdav would answer 405, which clients read as "it
// exists"), MOVE and COPY; the source of a refused MOVE stays; 255 bytes,
// or 85 three-byte runes, are made.
func TestNewNameTooLong(t *testing.T) {
	e := newEnv(t, envOpts{})
	n255, n256 := strings.Repeat("a", 255), strings.Repeat("b", 256)
	euro85, euro86 := url.PathEscape(strings.Repeat("€", 85)), url.PathEscape(strings.Repeat("€", 86))
	e.must(t, http.StatusCreated, "PUT", "/src", nil, "content")
	e.must(t, http.StatusCreated, "MKCOL", "/dsrc", nil, "")
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"put 256", "PUT", "/" + n256, nil, http.StatusBadRequest},
		{"put 86 euros", "PUT", "/" + euro86, nil, http.StatusBadRequest},
		{"mkcol 256", "MKCOL", "/" + n256, nil, http.StatusBadRequest},
		{"mkcol 256 under a missing folder", "MKCOL", "/nope/" + n256, nil, http.StatusBadRequest},
		{"move 256", "MOVE", "/src", map[string]string{"Destination": "/" + n256}, http.StatusBadRequest},
		{"move dir 256", "MOVE", "/dsrc", map[string]string{"Destination": "/" + n256}, http.StatusBadRequest},
		{"copy 256", "COPY", "/src", map[string]string{"Destination": "/" + n256}, http.StatusBadRequest},
		{"copy dir 256", "COPY", "/dsrc", map[string]string{"Destination": "/" + n256}, http.StatusBadRequest},
		{"put 255", "PUT", "/" + n255, nil, http.StatusCreated},
		{"put 85 euros", "PUT", "/" + euro85, nil, http.StatusCreated},
		{"mkcol 255", "MKCOL", "/d" + n255[1:], nil, http.StatusCreated},
		{"copy 255", "COPY", "/src", map[string]string{"Destination": "/c" + n255[1:]}, http.StatusCreated},
		{"move 255", "MOVE", "/src", map[string]string{"Destination": "/m" + n255[1:]}, http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "PUT" {
				body = "x"
			}
			r := e.must(t, tc.want, tc.method, tc.path, tc.hdr, body)
			if tc.want != http.StatusBadRequest {
				return
			}
			if !strings.Contains(r.body, "name too long") || !strings.Contains(r.body, " bytes") || !strings.Contains(r.body, "limited to 255") {
				t.Fatalf("answer %q does not say the name's length and the limit", r.body)
			}
			if strings.Count(strings.TrimSpace(r.body), "\n") != 0 {
				t.Fatalf("answer of more than one line: %q", r.body)
			}
			if tc.method == "MOVE" {
				e.must(t, http.StatusMultiStatus, "PROPFIND", tc.path, map[string]string{"Depth": "0"}, "")
			}
			e.must(t, http.StatusNotFound, "PROPFIND", "/"+n256, map[string]string{"Depth": "0"}, "")
		})
	}
}
