package webdav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/vdrive"
)

type resp struct {
	status int
	header http.Header
	body   string
}

// do sends one request as user (empty: no credentials). path is sent as
// given (raw), so tests can send hostile paths.
func (e *env) do(t testing.TB, method, path, user, pw string, hdr map[string]string, body io.Reader) resp {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path // sent verbatim
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (e *env) alice(t testing.TB, method, path string, hdr map[string]string, body string) resp {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return e.do(t, method, path, "alice", alicePW, hdr, r)
}

func (e *env) must(t testing.TB, want int, method, path string, hdr map[string]string, body string) resp {
	t.Helper()
	r := e.alice(t, method, path, hdr, body)
	if r.status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, strings.TrimSpace(r.body), want)
	}
	return r
}

// hrefs lists the hrefs of a multistatus body.
func hrefs(t testing.TB, body string) []string {
	t.Helper()
	var ms struct {
		Responses []struct {
			Href string `xml:"href"`
		} `xml:"response"`
	}
	if err := xml.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatalf("multistatus: %v\n%s", err, body)
	}
	var out []string
	for _, r := range ms.Responses {
		out = append(out, r.Href)
	}
	return out
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/f.txt", nil, "hello")
	for _, tc := range []struct {
		name, method, path, user, pw string
		want                         int
	}{
		{"no credentials", "PROPFIND", "/", "", "", http.StatusUnauthorized},
		{"wrong password", "GET", "/f.txt", "alice", "nope", http.StatusUnauthorized},
		{"unknown user", "GET", "/f.txt", "mallory", alicePW, http.StatusUnauthorized},
		{"alice reads", "GET", "/f.txt", "alice", alicePW, http.StatusOK},
		{"reader reads", "GET", "/f.txt", "reader", readerPW, http.StatusOK},
		{"reader lists", "PROPFIND", "/", "reader", readerPW, http.StatusMultiStatus},
		{"reader PUT", "PUT", "/g.txt", "reader", readerPW, http.StatusForbidden},
		{"reader DELETE", "DELETE", "/f.txt", "reader", readerPW, http.StatusForbidden},
		{"reader MOVE", "MOVE", "/f.txt", "reader", readerPW, http.StatusForbidden},
		{"reader COPY", "COPY", "/f.txt", "reader", readerPW, http.StatusForbidden},
		{"reader MKCOL", "MKCOL", "/d", "reader", readerPW, http.StatusForbidden},
		{"reader PROPPATCH", "PROPPATCH", "/f.txt", "reader", readerPW, http.StatusForbidden},
		{"reader LOCK", "LOCK", "/f.txt", "reader", readerPW, http.StatusForbidden},
		{"bob does not see alice's root", "GET", "/f.txt", "bob", bobPW, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Depth": "1", "Destination": e.srv.URL + "/moved.txt"}
			var body io.Reader
			if tc.method == "PROPPATCH" {
				body = strings.NewReader(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set></D:propertyupdate>`)
			}
			r := e.do(t, tc.method, tc.path, tc.user, tc.pw, hdr, body)
			if r.status != tc.want {
				t.Fatalf("%d %s, want %d", r.status, strings.TrimSpace(r.body), tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=") {
				t.Fatalf("401 without a Basic challenge: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// Nothing the reader tried changed the tree.
	if r := e.must(t, http.StatusOK, "GET", "/f.txt", nil, ""); r.body != "hello" {
		t.Fatalf("f.txt = %q", r.body)
	}
	e.must(t, http.StatusNotFound, "GET", "/moved.txt", nil, "")
}

func TestHostilePaths(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/dav/"})
	e.must(t, http.StatusCreated, "MKCOL", "/dav/sub", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/dav/sub/f", nil, "x")
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"dotdot", "GET", "/dav/sub/../../etc/passwd", nil, http.StatusBadRequest},
		{"dotdot at prefix", "PROPFIND", "/dav/..", map[string]string{"Depth": "0"}, http.StatusBadRequest},
		{"encoded dotdot", "GET", "/dav/sub/%2e%2e/%2e%2e/x", nil, http.StatusBadRequest},
		{"encoded slash", "GET", "/dav/sub%2Ff", nil, http.StatusBadRequest},
		{"NUL", "PUT", "/dav/a%00b", nil, http.StatusBadRequest},
		{"bad UTF-8", "PUT", "/dav/a%ffb", nil, http.StatusBadRequest},
		{"dot", "PUT", "/dav/./x", nil, http.StatusBadRequest},
		{"outside prefix", "GET", "/other/sub/f", nil, http.StatusNotFound},
		{"prefix lookalike", "GET", "/davx/sub/f", nil, http.StatusNotFound},
		{"destination dotdot", "COPY", "/dav/sub/f", map[string]string{"Destination": "/dav/sub/../../x"}, http.StatusBadRequest},
		{"destination encoded slash", "MOVE", "/dav/sub/f", map[string]string{"Destination": "/dav/a%2Fb"}, http.StatusBadRequest},
		{"destination other host outside prefix", "COPY", "/dav/sub/f", map[string]string{"Destination": "http://example.com/x"}, http.StatusBadGateway},
		{"destination outside prefix", "COPY", "/dav/sub/f", map[string]string{"Destination": "/x"}, http.StatusBadGateway},
		{"move into itself", "MOVE", "/dav/sub", map[string]string{"Destination": "/dav/sub/inner"}, http.StatusForbidden},
		{"copy onto ancestor", "COPY", "/dav/sub/f", map[string]string{"Destination": "/dav/sub"}, http.StatusForbidden},
		{"fine", "GET", "/dav/sub/f", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.alice(t, tc.method, tc.path, tc.hdr, "")
			if r.status != tc.want {
				t.Fatalf("%d %s, want %d", r.status, strings.TrimSpace(r.body), tc.want)
			}
		})
	}
	// The tree is as it was.
	r := e.must(t, http.StatusMultiStatus, "PROPFIND", "/dav/", map[string]string{"Depth": "1"}, "")
	if got := strings.Join(hrefs(t, r.body), " "); got != "/dav/ /dav/sub/" {
		t.Fatalf("root lists %q", got)
	}
}

func TestPropfindDepth(t *testing.T) {
	e := newEnv(t, envOpts{quota: func(context.Context) (Quota, error) { return Quota{Available: 12345, Used: 678}, nil }})
	e.must(t, http.StatusCreated, "MKCOL", "/a", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/a/b", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/a/b/c.txt", nil, "c")
	for _, tc := range []struct {
		name, depth string
		want        int
		hrefs       string
	}{
		{"depth 0", "0", 207, "/a/"},
		{"depth 1", "1", 207, "/a/ /a/b/"},
		{"no depth is 1", "", 207, "/a/ /a/b/"},
		{"infinity refused", "infinity", 403, ""},
		{"bad depth", "2", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.depth != "" {
				hdr["Depth"] = tc.depth
			}
			r := e.alice(t, "PROPFIND", "/a/", hdr, "")
			if r.status != tc.want {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want == 403 && !strings.Contains(r.body, "propfind-finite-depth") {
				t.Fatalf("403 body %q does not name propfind-finite-depth", r.body)
			}
			if tc.hrefs != "" {
				if got := strings.Join(hrefs(t, r.body), " "); got != tc.hrefs {
					t.Fatalf("hrefs %q, want %q", got, tc.hrefs)
				}
			}
		})
	}
	if r := e.must(t, 207, "PROPFIND", "/", map[string]string{"Depth": "0"}, ""); !strings.Contains(r.body, "Thu, 01 Jan 1970 00:00:00 GMT") {
		t.Errorf("root getlastmodified is not the epoch:\n%s", r.body)
	}
	r := e.must(t, 207, "PROPFIND", "/a/", map[string]string{"Depth": "0"},
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/><D:supportedlock/></D:prop></D:propfind>`)
	for _, want := range []string{"12345</", "678</", "shared"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("quota/supportedlock answer lacks %q:\n%s", want, r.body)
		}
	}
}

// TestPutGet: zero-length PUT then the real PUT (as Windows does), ETags
// from caps, conditional and range GETs, content types from names.
func TestPutGet(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/doc.pdf", nil, "")
	if r := e.must(t, http.StatusOK, "GET", "/doc.pdf", nil, ""); r.body != "" {
		t.Fatalf("empty file reads %q", r.body)
	}
	data := strings.Repeat("tarn webdav ", 100_000) // 1.2 MB: a chk file, not a literal
	put := e.must(t, http.StatusNoContent, "PUT", "/doc.pdf", nil, data)
	etag := put.header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Fatalf("PUT ETag %q", etag)
	}
	get := e.must(t, http.StatusOK, "GET", "/doc.pdf", nil, "")
	if get.body != data {
		t.Fatalf("GET returns %d bytes, want %d", len(get.body), len(data))
	}
	if get.header.Get("ETag") != etag || get.header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("GET ETag %q type %q; want %q application/pdf", get.header.Get("ETag"), get.header.Get("Content-Type"), etag)
	}
	if get.header.Get("Last-Modified") == "" {
		t.Fatal("no Last-Modified")
	}
	e.must(t, http.StatusNotModified, "GET", "/doc.pdf", map[string]string{"If-None-Match": etag}, "")
	e.must(t, http.StatusPreconditionFailed, "GET", "/doc.pdf", map[string]string{"If-Match": `"0000"`}, "")
	rg := e.must(t, http.StatusPartialContent, "GET", "/doc.pdf", map[string]string{"Range": "bytes=1000000-1000011"}, "")
	if rg.body != data[1000000:1000012] {
		t.Fatalf("range read %q", rg.body)
	}
	// The same content again has the same cap, hence the same ETag.
	if again := e.must(t, http.StatusNoContent, "PUT", "/doc.pdf", nil, data); again.header.Get("ETag") != etag {
		t.Fatalf("same content, new ETag %q", again.header.Get("ETag"))
	}
	// A file over the streaming threshold reads whole, in ranges, and
	// from a range that starts at 0.
	large := string(pseudo(5_000_000))
	e.must(t, http.StatusCreated, "PUT", "/large.bin", nil, large)
	if g := e.must(t, http.StatusOK, "GET", "/large.bin", nil, ""); g.body != large {
		t.Fatalf("large GET: %d bytes, equal %v", len(g.body), g.body == large)
	}
	for _, rng := range [][2]int{{0, 99}, {4_999_990, 4_999_999}, {1 << 20, 3 << 20}, {1<<20 - 5, 1<<20 + 5}} {
		g := e.must(t, http.StatusPartialContent, "GET", "/large.bin", map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", rng[0], rng[1])}, "")
		if g.body != large[rng[0]:rng[1]+1] {
			t.Fatalf("range %v: wrong bytes", rng)
		}
	}
	// Conditional PUTs.
	e.must(t, http.StatusPreconditionFailed, "PUT", "/doc.pdf", map[string]string{"If-None-Match": "*"}, "x")
	e.must(t, http.StatusPreconditionFailed, "PUT", "/doc.pdf", map[string]string{"If-Match": `"nope"`}, "x")
	e.must(t, http.StatusNoContent, "PUT", "/doc.pdf", map[string]string{"If-Match": etag}, "v2")
	e.must(t, http.StatusPreconditionFailed, "PUT", "/doc.pdf", map[string]string{"If": "([" + etag + "])"}, "v3")
	// Errors.
	e.must(t, http.StatusConflict, "PUT", "/missing/dir/f", nil, "x")
	e.must(t, http.StatusCreated, "MKCOL", "/d", nil, "")
	e.must(t, http.StatusMethodNotAllowed, "PUT", "/d", nil, "x")
	e.must(t, http.StatusBadRequest, "PUT", "/doc.pdf", map[string]string{"Content-Range": "bytes 0-1/2"}, "xy")
}

// TestCopyLinksCap: COPY of a file links its cap (same ETag, no new
// upload) and copies its dead properties.
func TestCopyLinksCap(t *testing.T) {
	e := newEnv(t, envOpts{})
	data := strings.Repeat("x", 200_000)
	etag := e.must(t, http.StatusCreated, "PUT", "/src.bin", nil, data).header.Get("ETag")
	e.must(t, 207, "PROPPATCH", "/src.bin", nil,
		`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><z:color xmlns:z="urn:test">blue</z:color></D:prop></D:set></D:propertyupdate>`)
	e.must(t, http.StatusCreated, "COPY", "/src.bin", map[string]string{"Destination": "/dst.bin"}, "")
	g := e.must(t, http.StatusOK, "GET", "/dst.bin", nil, "")
	if g.body != data || g.header.Get("ETag") != etag {
		t.Fatalf("copy: %d bytes, ETag %q; want %d, %q", len(g.body), g.header.Get("ETag"), len(data), etag)
	}
	r := e.must(t, 207, "PROPFIND", "/dst.bin", map[string]string{"Depth": "0"},
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><z:color xmlns:z="urn:test"/></D:prop></D:propfind>`)
	if !strings.Contains(r.body, "blue") {
		t.Fatalf("copied property missing:\n%s", r.body)
	}
	// A directory copy, deep.
	e.must(t, http.StatusCreated, "MKCOL", "/d1", nil, "")
	e.must(t, http.StatusCreated, "MKCOL", "/d1/e", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/d1/e/f", nil, "deep")
	e.must(t, http.StatusCreated, "COPY", "/d1", map[string]string{"Destination": "/d2", "Depth": "infinity"}, "")
	if g := e.must(t, http.StatusOK, "GET", "/d2/e/f", nil, ""); g.body != "deep" {
		t.Fatalf("deep copy reads %q", g.body)
	}
	// The copy is independent of the source.
	e.must(t, http.StatusNoContent, "DELETE", "/d1", nil, "")
	e.must(t, http.StatusOK, "GET", "/d2/e/f", nil, "")
	e.must(t, http.StatusNotFound, "GET", "/d1/e/f", nil, "")
}

// TestProps: dead properties kept in metadata, the Win32 properties
// Windows sends, protected live properties.
func TestProps(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/w.txt", nil, "win")
	win := `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>` +
		`<Z:Win32CreationTime>Mon, 02 Jan 2006 15:04:05 GMT</Z:Win32CreationTime>` +
		`<Z:Win32LastAccessTime>Mon, 02 Jan 2006 15:04:05 GMT</Z:Win32LastAccessTime>` +
		`<Z:Win32LastModifiedTime>Mon, 02 Jan 2006 15:04:05 GMT</Z:Win32LastModifiedTime>` +
		`<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>`
	r := e.must(t, 207, "PROPPATCH", "/w.txt", nil, win)
	if strings.Contains(r.body, "403") || strings.Count(r.body, "200 OK") != 1 {
		t.Fatalf("Win32 PROPPATCH not accepted:\n%s", r.body)
	}
	g := e.must(t, http.StatusOK, "HEAD", "/w.txt", nil, "")
	if lm := g.header.Get("Last-Modified"); lm != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Fatalf("Last-Modified %q, want the Win32LastModifiedTime", lm)
	}
	r = e.must(t, 207, "PROPFIND", "/w.txt", map[string]string{"Depth": "0"}, "")
	if !strings.Contains(r.body, "Win32FileAttributes") || !strings.Contains(r.body, "00000020") {
		t.Fatalf("allprop lacks the Win32 property:\n%s", r.body)
	}
	// Protected properties cannot be set; nothing of that request is.
	r = e.must(t, 207, "PROPPATCH", "/w.txt", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>x</D:getetag><y xmlns="urn:y">1</y></D:prop></D:set></D:propertyupdate>`)
	if !strings.Contains(r.body, "403") || !strings.Contains(r.body, "424") {
		t.Fatalf("protected PROPPATCH:\n%s", r.body)
	}
	r = e.must(t, 207, "PROPPATCH", "/w.txt", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:quota-available-bytes>1</D:quota-available-bytes></D:prop></D:set></D:propertyupdate>`)
	if !strings.Contains(r.body, "403") {
		t.Fatalf("quota PROPPATCH:\n%s", r.body)
	}
	// Too large a value is refused, not half stored.
	big := strings.Repeat("v", 70_000)
	r = e.must(t, 207, "PROPPATCH", "/w.txt", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><big xmlns="urn:big">`+big+`</big></D:prop></D:set></D:propertyupdate>`)
	if !strings.Contains(r.body, "507") {
		t.Fatalf("oversized property:\n%s", r.body)
	}
	r = e.must(t, 207, "PROPPATCH", "/", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><y xmlns="urn:y">1</y></D:prop></D:set></D:propertyupdate>`)
	if !strings.Contains(r.body, "403") {
		t.Fatalf("PROPPATCH of the root:\n%s", r.body)
	}
	e.must(t, http.StatusBadRequest, "PROPFIND", "/w.txt", map[string]string{"Depth": "0"},
		`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><bar:foo xmlns:bar=""/></prop></propfind>`)
}

func TestAppleDouble(t *testing.T) {
	for _, tc := range []struct {
		mode            string
		putStatus       int
		listed, canRead bool
	}{
		{AppleKeep, http.StatusCreated, true, true},
		{AppleHide, http.StatusCreated, false, true},
		{AppleRefuse, http.StatusForbidden, false, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t, envOpts{apple: tc.mode})
			e.must(t, http.StatusCreated, "PUT", "/photo.jpg", nil, "jpeg")
			e.must(t, tc.putStatus, "PUT", "/._photo.jpg", nil, "resource fork")
			e.must(t, tc.putStatus, "PUT", "/.DS_Store", nil, "finder")
			r := e.must(t, 207, "PROPFIND", "/", map[string]string{"Depth": "1"}, "")
			list := strings.Join(hrefs(t, r.body), " ")
			if strings.Contains(list, "._photo.jpg") != tc.listed || strings.Contains(list, ".DS_Store") != tc.listed {
				t.Fatalf("listing %q; AppleDouble files listed: want %v", list, tc.listed)
			}
			if !strings.Contains(list, "photo.jpg") {
				t.Fatalf("listing %q lacks photo.jpg", list)
			}
			want := http.StatusNotFound
			if tc.canRead {
				want = http.StatusOK
			}
			e.must(t, want, "GET", "/._photo.jpg", nil, "")
			if tc.mode == AppleRefuse {
				e.must(t, http.StatusForbidden, "MKCOL", "/._dir", nil, "")
				e.must(t, http.StatusForbidden, "MOVE", "/photo.jpg", map[string]string{"Destination": "/._x"}, "")
			}
		})
	}
}

// TestLargeDirectory: a PROPFIND Depth 1 of 10,000 entries answers every
// entry and reads no file content; the directory is read once, not once
// per child.
func TestLargeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "MKCOL", "/big", nil, "")
	data := strings.Repeat("z", 100_000) // a chk file: reading it would touch the servers
	e.must(t, http.StatusCreated, "PUT", "/big/seed", nil, data)
	d, err := vdrive.New(e.store, e.root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in, err := d.Stat(ctx, "/big/seed")
	if err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	links := map[string]string{}
	for i := range n {
		links[fmt.Sprintf("f%05d.txt", i)] = in.ReadCap()
	}
	if err := d.LinkMany(ctx, "/big", links); err != nil {
		t.Fatal(err)
	}
	// The handler's drive keeps directory roots for a second (another
	// client's change, like this one, shows after that).
	time.Sleep(1100 * time.Millisecond)
	req, _ := http.NewRequest("PROPFIND", e.url+"big/", nil)
	req.SetBasicAuth("alice", alicePW)
	req.Header.Set("Depth", "1")
	start, reads0 := time.Now(), e.reads()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 207 {
		t.Fatalf("status %d", res.StatusCode)
	}
	h := sha256.New()
	count := 0
	buf := make([]byte, 64<<10)
	var body bytes.Buffer
	for {
		k, err := res.Body.Read(buf)
		body.Write(buf[:k])
		h.Write(buf[:k])
		if err != nil {
			break
		}
	}
	count = strings.Count(body.String(), "<D:response>")
	el := time.Since(start)
	if count != n+2 {
		t.Fatalf("%d responses, want %d", count, n+2)
	}
	if res.ContentLength != -1 {
		t.Fatalf("Content-Length %d: the answer was buffered, not streamed", res.ContentLength)
	}
	if !strings.Contains(body.String(), `/big/f09999.txt`) || !strings.Contains(body.String(), "text/plain") {
		t.Fatal("last entry or its content type missing")
	}
	reads := e.reads() - reads0
	t.Logf("PROPFIND Depth 1 of %d entries: %v, %d bytes, %d share reads", n, el.Round(time.Millisecond), body.Len(), reads)
	if reads > 500 {
		t.Fatalf("%d share reads for one listing: children were fetched", reads)
	}
	if el > 60*time.Second {
		t.Fatalf("listing took %v", el)
	}
}

// TestLockSharedExclusive: shared locks coexist, an exclusive one does
// not, writes need a token, refresh and unlock work, timeouts are capped.
func TestLockSharedExclusive(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/l.txt", nil, "x")
	lockBody := func(scope string) string {
		return `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:` + scope + `/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:a@example.com</D:href></D:owner></D:lockinfo>`
	}
	tokenOf := func(r resp) string {
		return strings.Trim(r.header.Get("Lock-Token"), "<>")
	}
	s1 := e.must(t, http.StatusOK, "LOCK", "/l.txt", map[string]string{"Timeout": "Second-99999999"}, lockBody("shared"))
	if !strings.Contains(s1.body, "Second-3600") {
		t.Fatalf("timeout not capped at the lock_timeout (1h):\n%s", s1.body)
	}
	if !strings.Contains(s1.body, "mailto:a@example.com") {
		t.Fatalf("owner not echoed:\n%s", s1.body)
	}
	s2 := e.must(t, http.StatusOK, "LOCK", "/l.txt", nil, lockBody("shared"))
	e.must(t, 423, "LOCK", "/l.txt", nil, lockBody("exclusive"))
	e.must(t, 423, "PUT", "/l.txt", nil, "no token")
	e.must(t, http.StatusNoContent, "PUT", "/l.txt", map[string]string{"If": "(<" + tokenOf(s2) + ">)"}, "with token")
	e.must(t, 423, "PUT", "/l.txt", map[string]string{"If": "(<opaquelocktoken:bogus>)"}, "bad token")
	e.must(t, http.StatusPreconditionFailed, "PUT", "/l.txt", map[string]string{"If": "(<" + tokenOf(s2) + "> [\"bad-etag\"])"}, "bad etag")
	e.must(t, http.StatusOK, "LOCK", "/l.txt", map[string]string{"If": "(<" + tokenOf(s1) + ">)", "Timeout": "Second-60"}, "")
	r := e.must(t, 207, "PROPFIND", "/l.txt", map[string]string{"Depth": "0"},
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>`)
	if strings.Count(r.body, "activelock") != 4 { // two locks, open and close tags
		t.Fatalf("lockdiscovery:\n%s", r.body)
	}
	e.must(t, http.StatusNoContent, "UNLOCK", "/l.txt", map[string]string{"Lock-Token": "<" + tokenOf(s1) + ">"}, "")
	e.must(t, http.StatusNoContent, "UNLOCK", "/l.txt", map[string]string{"Lock-Token": "<" + tokenOf(s2) + ">"}, "")
	e.must(t, http.StatusNoContent, "PUT", "/l.txt", nil, "free again")
	// LOCK of an unmapped URL makes an empty file; a depth-infinity lock
	// on a collection covers its members.
	e.must(t, http.StatusCreated, "LOCK", "/new.txt", nil, lockBody("exclusive"))
	e.must(t, http.StatusCreated, "MKCOL", "/c", nil, "")
	c := e.must(t, http.StatusOK, "LOCK", "/c", nil, lockBody("exclusive"))
	e.must(t, 423, "PUT", "/c/inner", nil, "x")
	e.must(t, http.StatusCreated, "PUT", "/c/inner", map[string]string{"If": "</c> (<" + tokenOf(c) + ">)"}, "x")
	e.must(t, http.StatusBadRequest, "LOCK", "/c", nil, "<not xml")
}

func FuzzParseIf(f *testing.F) {
	for _, s := range []string{
		`(<opaquelocktoken:a>)`, `(Not <DAV:no-lock> ["etag"])`, `</a> (<t1>) (["x"]) </b> (Not <t2>)`,
		`(<t> [W/"weak"])`, `((`, `</x>`, `(Not)`, `([])`, `( <a> ) ( <b> )`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lists, err := parseIf(s)
		if err != nil {
			return
		}
		for _, l := range lists {
			if len(l.conditions) == 0 {
				t.Fatalf("%q: empty list accepted", s)
			}
			for _, c := range l.conditions {
				if (c.Token == "") == (c.ETag == "") {
					t.Fatalf("%q: condition %+v has neither or both", s, c)
				}
			}
		}
	})
}

func FuzzReadLockInfo(f *testing.F) {
	f.Add(`<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>`)
	f.Add(`<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype><owner><href xmlns:a="urn:a" a:x="1">h</href></owner></lockinfo>`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, s string) {
		li, ok, err := readLockInfo(strings.NewReader(s))
		if err != nil || !ok {
			return
		}
		if li.shared == li.exclusive {
			t.Fatalf("%q: scope shared=%v exclusive=%v", s, li.shared, li.exclusive)
		}
		// The owner must stand on its own as XML.
		if err := xml.Unmarshal([]byte("<o>"+li.owner+"</o>"), new(struct{})); err != nil {
			t.Fatalf("%q: owner %q is not well-formed: %v", s, li.owner, err)
		}
	})
}

var _ = url.Parse

// pseudo is n reproducible bytes.
func pseudo(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// TestLocksSharedByFrontends: a lock taken through one frontend holds
// through another of the same node (one Locks table), and not through a
// frontend with its own table.
func TestLocksSharedByFrontends(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/f", nil, "x")
	locks := NewLocks()
	serve := func(l *Locks) *httptest.Server {
		cfg := e.cfg
		cfg.Locks = l
		h, err := NewHandler(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv
	}
	a, b, own := serve(locks), serve(locks), serve(nil)
	req := func(srv *httptest.Server, method, body string) int {
		r, _ := http.NewRequest(method, srv.URL+"/f", strings.NewReader(body))
		r.SetBasicAuth("alice", alicePW)
		res, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	lock := `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>`
	if s := req(a, "LOCK", lock); s != http.StatusOK {
		t.Fatalf("LOCK through a: %d", s)
	}
	if s := req(b, "PUT", "y"); s != 423 {
		t.Fatalf("PUT through b without the token: %d, want 423", s)
	}
	if s := req(own, "PUT", "y"); s != http.StatusNoContent {
		t.Fatalf("PUT through a frontend with its own table: %d, want 204", s)
	}
}

// TestIndex: a GET of a collection lists its entries as HTML, names
// escaped, links under the prefix.
func TestIndex(t *testing.T) {
	e := newEnv(t, envOpts{prefix: "/dav/", apple: AppleHide})
	e.must(t, http.StatusCreated, "MKCOL", "/dav/sub", nil, "")
	e.must(t, http.StatusCreated, "PUT", "/dav/sub/%3Cb%3E&x%20y.txt", nil, "x")
	e.must(t, http.StatusCreated, "PUT", "/dav/sub/._hidden", nil, "x")
	e.must(t, http.StatusCreated, "MKCOL", "/dav/sub/inner", nil, "")
	r := e.must(t, http.StatusOK, "GET", "/dav/sub/", nil, "")
	if r.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("type %q", r.header.Get("Content-Type"))
	}
	for _, want := range []string{`href="/dav/sub/%3Cb%3E&amp;x%20y.txt">&lt;b&gt;&amp;x y.txt</a>`, `href="/dav/sub/inner/">inner/</a>`, `href="/dav/">../</a>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("index lacks %s:\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, "<b>") || strings.Contains(r.body, "_hidden") {
		t.Errorf("index shows raw markup or a hidden AppleDouble file:\n%s", r.body)
	}
	if h := e.must(t, http.StatusOK, "HEAD", "/dav/", nil, ""); h.body != "" || h.header.Get("Content-Length") == "" {
		t.Fatalf("HEAD of a collection: %q, length %q", h.body, h.header.Get("Content-Length"))
	}
}

// TestUnicodeForms: a name sent decomposed (NFD, as macOS does) and
// composed (NFC) is one resource: one file, and a lock on one form holds
// for the other.
func TestUnicodeForms(t *testing.T) {
	e := newEnv(t, envOpts{})
	nfc, nfd := "/caf%C3%A9.txt", "/cafe%CC%81.txt" // "café" both ways
	e.must(t, http.StatusCreated, "PUT", nfd, nil, "one")
	if g := e.must(t, http.StatusOK, "GET", nfc, nil, ""); g.body != "one" {
		t.Fatalf("NFC name reads %q", g.body)
	}
	lock := `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>`
	e.must(t, http.StatusOK, "LOCK", nfd, nil, lock)
	e.must(t, 423, "PUT", nfc, nil, "two")
	e.must(t, 423, "DELETE", nfc, nil, "")
	r := e.must(t, 207, "PROPFIND", "/", map[string]string{"Depth": "1"}, "")
	if got := strings.Join(hrefs(t, r.body), " "); got != "/ /caf%C3%A9.txt" {
		t.Fatalf("listing %q: want one file, named in NFC", got)
	}
}
