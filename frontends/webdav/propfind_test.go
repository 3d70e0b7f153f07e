package webdav

import (
	"net/http"
	"strings"
	"testing"
)

// TestPropfindSupportedLockOnce: every kind of PROPFIND answers
// supportedlock once per resource (allprop and propname listed it twice:
// x/net/webdav's live one and ours), with shared locks in it.
func TestPropfindSupportedLockOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "MKCOL", "/d", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/d/f", nil, "x")
	e.must(t, http.StatusCreated, "PUT", "/d/g", nil, "y")
	for _, tc := range []struct {
		name, body string
		shared     bool // the value is in the answer
	}{
		{"empty body", "", true},
		{"allprop", `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`, true},
		{"allprop include", `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:supportedlock/></D:include></D:propfind>`, true},
		{"propname", `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>`, false},
		{"prop", `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:supportedlock/><D:getetag/></D:prop></D:propfind>`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, depth := range []string{"0", "1"} {
				r := e.must(t, 207, "PROPFIND", "/d", map[string]string{"Depth": depth}, tc.body)
				n := len(hrefs(t, r.body))
				if got := strings.Count(r.body, "<D:supportedlock"); got != n {
					t.Fatalf("Depth %s: %d supportedlock in %d responses:\n%s", depth, got, n, r.body)
				}
				if tc.shared && strings.Count(r.body, "<D:shared/>") != n {
					t.Fatalf("Depth %s: shared locks not offered in each response:\n%s", depth, r.body)
				}
			}
		})
	}
}
