//go:build acceptance

package acceptance

// What a demanding user does through WebDAV on a tarn dev grid of real
// processes, with real clients: rclone syncs a tree twice (times must
// round-trip so the second sync sends nothing), a collection COPY of the
// tree, the request flow of Windows' WebDAV redirector saving a file, and
// a MOVE retried after it succeeded.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// userqaDAV is the dev grid's WebDAV frontend and its account.
type userqaDAV struct {
	url, user, pass string
	client          *http.Client
}

func startUserQADAV(t *testing.T) *userqaDAV {
	t.Helper()
	g := startGrid(t, GridOptions{})
	var ep devWebDAV
	b, err := os.ReadFile(filepath.Join(g.Dir, "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ep); err != nil || ep.WebDAV.URL == "" {
		t.Fatalf("endpoints.json has no webdav entry (%v):\n%s", err, b)
	}
	u := ep.WebDAV.URL
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return &userqaDAV{url: u, user: ep.WebDAV.User, pass: ep.WebDAV.Password, client: &http.Client{Timeout: 5 * time.Minute}}
}

func (d *userqaDAV) req(t *testing.T, method, p string, hdr map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	r, err := http.NewRequest(method, d.url+strings.TrimPrefix(p, "/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.SetBasicAuth(d.user, d.pass)
	r.Header.Set("User-Agent", "Microsoft-WebDAV-MiniRedir/10.0.19045")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	res, err := d.client.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, p, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func (d *userqaDAV) must(t *testing.T, want int, method, p string, hdr map[string]string, body string) (http.Header, string) {
	t.Helper()
	st, h, b := d.req(t, method, p, hdr, body)
	if st != want {
		t.Fatalf("%s %s: %d %s, want %d", method, p, st, clip(strings.TrimSpace(b)), want)
	}
	return h, b
}

// TestUserQAWebDAV runs the three flows on one dev grid.
func TestUserQAWebDAV(t *testing.T) {
	needTool(t, "rclone")
	d := startUserQADAV(t)
	t.Run("rclone sync keeps times", func(t *testing.T) { userqaRcloneSync(t, d) })
	t.Run("collection copy", func(t *testing.T) { userqaCopy(t, d) })
	t.Run("windows save", func(t *testing.T) { userqaWindowsSave(t, d) })
	t.Run("move retried", func(t *testing.T) { userqaMoveRetried(t, d) })
}

// userqaMoveRetried: a client whose MOVE succeeded but whose answer was
// lost sends it again; the file it moved must survive (x/net/webdav's
// MOVE deleted it: 403, then 404 on GET).
func userqaMoveRetried(t *testing.T, d *userqaDAV) {
	content := string(genBytes(78, 300_000))
	d.must(t, http.StatusCreated, "PUT", "draft.odt", nil, content)
	mv := map[string]string{"Destination": d.url + "final.odt", "Overwrite": "T"}
	d.must(t, http.StatusCreated, "MOVE", "draft.odt", mv, "")
	d.must(t, http.StatusNotFound, "MOVE", "draft.odt", mv, "")
	if _, got := d.must(t, http.StatusOK, "GET", "final.odt", nil, ""); got != content {
		t.Fatalf("the moved file reads %d bytes, want %d", len(got), len(content))
	}
}

// userqaRclone runs rclone against d with vendor owncloud (what
// docs/webdav.md advises).
func userqaRclone(t *testing.T, d *userqaDAV, dir string) func(args ...string) string {
	obscured, err := tool(t, time.Minute, dir, nil, nil, "rclone", "obscure", d.pass)
	if err != nil {
		t.Fatalf("rclone obscure: %v %s", err, obscured)
	}
	env := []string{
		"RCLONE_CONFIG=" + filepath.Join(dir, "rclone.conf"),
		"RCLONE_CONFIG_TARN_TYPE=webdav", "RCLONE_CONFIG_TARN_URL=" + d.url,
		"RCLONE_CONFIG_TARN_VENDOR=owncloud", "RCLONE_CONFIG_TARN_USER=" + d.user,
		"RCLONE_CONFIG_TARN_PASS=" + strings.TrimSpace(obscured),
	}
	return func(args ...string) string {
		t.Helper()
		out, err := tool(t, 10*time.Minute, dir, env, nil, "rclone", append([]string{"--retries", "1"}, args...)...)
		if err != nil {
			t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, clip(out))
		}
		return out
	}
}

// userqaRcloneSync: a tree synced twice: the second sync sends nothing,
// the listing shows the source's mtimes, the bytes come back equal, and a
// same-size change with a new mtime is sent (with vendor other rclone
// compares sizes only and would miss it).
func userqaRcloneSync(t *testing.T, d *userqaDAV) {
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src"), filepath.Join(dir, "back")
	makeTree(t, src)
	old := time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC)
	n := 0
	filepath.WalkDir(src, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			n++
			os.Chtimes(p, old, old.Add(time.Duration(n)*time.Minute))
		}
		return nil
	})
	rclone := userqaRclone(t, d, dir)
	rclone("sync", "--create-empty-src-dirs", src, "tarn:synced")
	start := time.Now()
	if out := rclone("sync", "-v", "--create-empty-src-dirs", src, "tarn:synced"); strings.Contains(out, "Copied") {
		t.Fatalf("the second sync copied files:\n%s", clip(out))
	}
	figure(t, "userqa: rclone (vendor owncloud) second sync of %d unchanged files over WebDAV: %v, nothing sent", n, time.Since(start).Round(time.Millisecond))
	list := rclone("lsl", "tarn:synced")
	if !strings.Contains(list, old.Add(time.Minute).Format("2006-01-02 15:04:05")) {
		t.Fatalf("the listing lacks the source's mtimes:\n%s", clip(list))
	}
	if out := rclone("check", "--download", src, "tarn:synced"); !strings.Contains(out, "0 differences found") {
		t.Fatalf("rclone check --download:\n%s", clip(out))
	}
	// The same size, other bytes, a newer mtime: sent.
	p := filepath.Join(src, "top.txt")
	b, _ := os.ReadFile(p)
	for i := range b {
		b[i] ^= 0x55
	}
	os.WriteFile(p, b, 0o644)
	if out := rclone("sync", "-v", src, "tarn:synced"); strings.Count(out, "Copied") != 1 {
		t.Fatalf("sync after a same-size change: want one file copied:\n%s", clip(out))
	}
	rclone("copy", "--create-empty-src-dirs", "tarn:synced", back)
	if w, g := treeDigest(t, src), treeDigest(t, back); strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Fatalf("the tree copied back differs:\nwant %v\ngot  %v", w, g)
	}
}

// userqaCopy: a collection COPY of the synced tree is whole and its own.
func userqaCopy(t *testing.T, d *userqaDAV) {
	start := time.Now()
	d.must(t, http.StatusCreated, "COPY", "synced/", map[string]string{"Destination": d.url + "copied/"}, "")
	figure(t, "userqa: WebDAV COPY of a %s tree: %v", "makeTree", time.Since(start).Round(time.Millisecond))
	d.must(t, http.StatusConflict, "COPY", "synced/", map[string]string{"Destination": d.url + "no/such/parent/"}, "")
	d.must(t, http.StatusPreconditionFailed, "COPY", "synced/", map[string]string{"Destination": d.url + "copied/", "Overwrite": "F"}, "")
	dir := t.TempDir()
	rclone := userqaRclone(t, d, dir)
	if out := rclone("check", "--download", "tarn:synced", "tarn:copied"); !strings.Contains(out, "0 differences found") {
		t.Fatalf("rclone check of the copy:\n%s", clip(out))
	}
	d.must(t, http.StatusNoContent, "DELETE", "synced/top.txt", nil, "")
	d.must(t, http.StatusOK, "GET", "copied/top.txt", nil, "")
}

// userqaWindowsSave replays what Windows' redirector sends to save a
// file: an empty PUT, LOCK, PROPPATCH of the Win32 times under the lock,
// the content's PUT under the lock, the times again, UNLOCK; the file
// then shows Explorer's mtime and exactly the bytes sent, and a PROPFIND
// answers supportedlock once.
func userqaWindowsSave(t *testing.T, d *userqaDAV) {
	const p = "Report Q3 (final) #2.docx"
	esc := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(p, " ", "%20"), "#", "%23"), "(", "%28")
	d.must(t, http.StatusNotFound, "PROPFIND", esc, map[string]string{"Depth": "0"}, "")
	d.must(t, http.StatusCreated, "PUT", esc, nil, "")
	h, _ := d.must(t, http.StatusOK, "LOCK", esc, map[string]string{"Timeout": "Second-3600", "Depth": "0"},
		`<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>WIN10\user</D:href></D:owner></D:lockinfo>`)
	tok := h.Get("Lock-Token")
	if tok == "" {
		t.Fatal("LOCK answered no Lock-Token")
	}
	times := `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>` +
		`<Z:Win32CreationTime>Tue, 01 Jan 2019 10:00:00 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Wed, 02 Jan 2019 10:00:00 GMT</Z:Win32LastAccessTime>` +
		`<Z:Win32LastModifiedTime>Thu, 03 Jan 2019 10:00:00 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>`
	if _, b := d.must(t, 207, "PROPPATCH", esc, map[string]string{"If": "(" + tok + ")"}, times); strings.Count(b, "200 OK") != 1 {
		t.Fatalf("PROPPATCH of the Win32 times:\n%s", b)
	}
	content := string(genBytes(77, 1<<20+1))
	d.must(t, http.StatusLocked, "PUT", esc, nil, content)
	d.must(t, http.StatusNoContent, "PUT", esc, map[string]string{"If": "(" + tok + ")"}, content)
	d.must(t, 207, "PROPPATCH", esc, map[string]string{"If": "(" + tok + ")"}, times)
	d.must(t, http.StatusNoContent, "UNLOCK", esc, map[string]string{"Lock-Token": tok}, "")
	h, got := d.must(t, http.StatusOK, "GET", esc, nil, "")
	if got != content {
		t.Fatalf("GET: %d bytes, want %d", len(got), len(content))
	}
	if lm := h.Get("Last-Modified"); lm != "Thu, 03 Jan 2019 10:00:00 GMT" {
		t.Fatalf("Last-Modified %q, want Explorer's Win32LastModifiedTime", lm)
	}
	_, b := d.must(t, 207, "PROPFIND", esc, map[string]string{"Depth": "0"}, `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`)
	if c := strings.Count(b, "<D:supportedlock>"); c != 1 {
		t.Fatalf("allprop: supportedlock %d times:\n%s", c, b)
	}
	if !strings.Contains(b, "00000020") {
		t.Fatalf("allprop lacks Win32FileAttributes:\n%s", b)
	}
}
