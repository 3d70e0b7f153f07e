package webdav

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseUnixTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1500000000", time.Unix(1500000000, 0), true},
		{" 1500000000 ", time.Unix(1500000000, 0), true},
		{"1500000000.25", time.Unix(1500000000, 250_000_000), true},
		{"1500000000.123456789", time.Unix(1500000000, 123456789), true},
		{"-86400", time.Unix(-86400, 0), true},
		{"-1.5", time.Unix(-1, -500_000_000), true},
		{"", time.Time{}, false},
		{"abc", time.Time{}, false},
		{"1500000000.", time.Time{}, false},
		{".5", time.Time{}, false},
		{"1500000000.1234567890", time.Time{}, false},
		{"1500000000.-5", time.Time{}, false},
		{"Mon, 02 Jan 2006 15:04:05 GMT", time.Time{}, false},
		{"99999999999999", time.Time{}, false},
		{"-", time.Time{}, false},
	} {
		got, err := parseUnixTime(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("parseUnixTime(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseUnixTime(f *testing.F) {
	for _, s := range []string{"1500000000", "1.5", "-1.000000001", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseUnixTime(s)
		if err == nil && (got.Year() < 1 || got.Year() > 10000) {
			t.Fatalf("parseUnixTime(%q) = %v", s, got)
		}
	})
}

// lastModified is the getlastmodified a PROPFIND of p shows.
func (e *env) lastModified(t *testing.T, p string) string {
	t.Helper()
	r := e.must(t, 207, "PROPFIND", p, map[string]string{"Depth": "0"},
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/></D:prop></D:propfind>`)
	_, rest, _ := strings.Cut(r.body, "<D:getlastmodified>")
	v, _, _ := strings.Cut(rest, "<")
	return v
}

// TestOCMtime: the mtime an ownCloud-style client sends with a PUT
// (X-OC-Mtime) or a PROPPATCH of lastmodified is the file's mtime, for
// small and streamed bodies; a malformed one is refused before anything
// is stored or changed.
func TestOCMtime(t *testing.T) {
	e := newEnv(t, envOpts{})
	const when = "Fri, 14 Jul 2017 02:40:00 GMT" // 1500000000
	for _, tc := range []struct {
		name string
		path string
		body string
	}{
		{"empty", "/m0", ""},
		{"small", "/m1", "hello"},
		{"streamed", "/m2", string(pseudo(600_000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(t, http.StatusCreated, "PUT", tc.path, map[string]string{"X-OC-Mtime": "1500000000"}, tc.body)
			if r.header.Get("X-OC-Mtime") != "accepted" {
				t.Fatalf("X-OC-Mtime answer %q, want accepted", r.header.Get("X-OC-Mtime"))
			}
			if got := e.lastModified(t, tc.path); got != when {
				t.Fatalf("getlastmodified %q, want %q", got, when)
			}
			if g := e.must(t, http.StatusOK, "GET", tc.path, nil, ""); g.body != tc.body || g.header.Get("Last-Modified") != when {
				t.Fatalf("GET: %d bytes, Last-Modified %q", len(g.body), g.header.Get("Last-Modified"))
			}
			// Replacing it without the header makes it new again.
			e.must(t, http.StatusNoContent, "PUT", tc.path, nil, tc.body+"!")
			if got := e.lastModified(t, tc.path); got == when {
				t.Fatal("a PUT without X-OC-Mtime kept the old mtime")
			}
		})
	}
	r := e.must(t, http.StatusBadRequest, "PUT", "/bad", map[string]string{"X-OC-Mtime": "yesterday"}, "x")
	if !strings.Contains(r.body, "X-OC-Mtime") {
		t.Fatalf("bad X-OC-Mtime answer %q does not name the header", r.body)
	}
	e.must(t, http.StatusNotFound, "GET", "/bad", nil, "")

	// PROPPATCH of {DAV:}lastmodified (rclone's SetModTime for owncloud
	// and nextcloud) sets the mtime and is not kept as a property.
	set := func(v string) resp {
		return e.must(t, 207, "PROPPATCH", "/m1", nil, `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><lastmodified xmlns="DAV:">`+v+`</lastmodified><x:y xmlns:x="urn:x">z</x:y></D:prop></D:set></D:propertyupdate>`)
	}
	if r := set("1000000000"); strings.Count(r.body, "200 OK") != 1 || strings.Contains(r.body, "409") {
		t.Fatalf("PROPPATCH lastmodified:\n%s", r.body)
	}
	if got := e.lastModified(t, "/m1"); got != "Sun, 09 Sep 2001 01:46:40 GMT" {
		t.Fatalf("after PROPPATCH getlastmodified %q", got)
	}
	if r := e.must(t, 207, "PROPFIND", "/m1", map[string]string{"Depth": "0"}, ""); strings.Contains(r.body, ">1000000000<") {
		t.Fatalf("lastmodified kept as a dead property:\n%s", r.body)
	}
	r = set("not a time")
	if !strings.Contains(r.body, "409") || !strings.Contains(r.body, "424") {
		t.Fatalf("bad lastmodified:\n%s", r.body)
	}
	if got := e.lastModified(t, "/m1"); got != "Sun, 09 Sep 2001 01:46:40 GMT" {
		t.Fatalf("a refused PROPPATCH changed the mtime to %q", got)
	}
}

// TestWin32MtimeFollowsContent: Win32LastModifiedTime, once set, reads as
// the file's mtime, so a later save by another client (a PUT without
// Win32 properties) does not leave Explorer an old time.
func TestWin32MtimeFollowsContent(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.must(t, http.StatusCreated, "PUT", "/w.txt", nil, "v1")
	e.must(t, 207, "PROPPATCH", "/w.txt", nil, `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32LastModifiedTime>Mon, 02 Jan 2006 15:04:05 GMT</Z:Win32LastModifiedTime></D:prop></D:set></D:propertyupdate>`)
	win := func() string {
		r := e.must(t, 207, "PROPFIND", "/w.txt", map[string]string{"Depth": "0"},
			`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><Z:Win32LastModifiedTime xmlns:Z="urn:schemas-microsoft-com:"/></D:prop></D:propfind>`)
		_, rest, _ := strings.Cut(r.body, `<Win32LastModifiedTime xmlns="urn:schemas-microsoft-com:">`)
		v, _, _ := strings.Cut(rest, "<")
		return v
	}
	if got := win(); got != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Fatalf("Win32LastModifiedTime %q", got)
	}
	e.must(t, http.StatusNoContent, "PUT", "/w.txt", map[string]string{"X-OC-Mtime": "1500000000"}, "v2")
	if got, lm := win(), e.lastModified(t, "/w.txt"); got != lm || got != "Fri, 14 Jul 2017 02:40:00 GMT" {
		t.Fatalf("after a new save: Win32LastModifiedTime %q, getlastmodified %q", got, lm)
	}
}

// TestRcloneOwncloudSync: rclone with vendor owncloud sends X-OC-Mtime;
// a second sync of the same tree transfers nothing, and the listing shows
// the source's mtimes (to the second).
func TestRcloneOwncloudSync(t *testing.T) {
	bin, err := exec.LookPath("rclone")
	if err != nil {
		t.Skip("rclone is not installed")
	}
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t, envOpts{})
	src := t.TempDir()
	old := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	for i, n := range []string{"a.txt", "sub/b.bin", "sub/deeper/c d.txt", "zero"} {
		p := filepath.Join(src, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := pseudo(i * 100_000)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	obscured, err := exec.Command(bin, "obscure", alicePW).Output()
	if err != nil {
		t.Fatal(err)
	}
	rclone := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--config", filepath.Join(t.TempDir(), "none.conf"), "--low-level-retries", "1", "--retries", "1")...)
		cmd.Env = append(os.Environ(),
			"RCLONE_CONFIG_OC_TYPE=webdav", "RCLONE_CONFIG_OC_URL="+e.url, "RCLONE_CONFIG_OC_VENDOR=owncloud",
			"RCLONE_CONFIG_OC_USER=alice", "RCLONE_CONFIG_OC_PASS="+strings.TrimSpace(string(obscured)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	rclone("sync", src, "oc:tree")
	second := rclone("sync", "-v", src, "oc:tree")
	if strings.Contains(second, "Copied") {
		t.Fatalf("the second sync copied:\n%s", second)
	}
	list := rclone("lsl", "oc:tree")
	for i, n := range []string{"a.txt", "sub/b.bin", "sub/deeper/c d.txt", "zero"} {
		want := old.Add(time.Duration(i) * time.Hour).Format("2006-01-02 15:04:05")
		if !strings.Contains(list, want+".000000000 "+n) {
			t.Errorf("%s: want mtime %s in\n%s", n, want, list)
		}
	}
}
