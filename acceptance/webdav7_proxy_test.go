//go:build acceptance

package acceptance

// WebDAV behind a reverse proxy that rewrites the Host header to its
// backend's, as nginx's proxy_pass does by default: the clients name the
// proxy in Destination (COPY, MOVE) and in the If headers that carry
// their lock tokens (neon, behind cadaver and davfs2, tags them with the
// URL it was given). tarn compares their paths only; it answered 502 to
// every COPY and MOVE through such a proxy.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startHostRewritingProxy serves backend on a loopback port of its own,
// sending the backend's host in Host (nginx's default) and leaving
// Destination and If as the client wrote them. It returns the proxy's
// URL (same path as backend).
func startHostRewritingProxy(t *testing.T, backend string) string {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
		pr.Out.Host = target.Host
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// "localhost" rather than the backend's 127.0.0.1: another host name
	// and another port.
	return fmt.Sprintf("http://localhost:%d%s", ln.Addr().(*net.TCPAddr).Port, target.Path)
}

func TestWebDAV7BehindProxy(t *testing.T) {
	needTool(t, "cadaver")
	needTool(t, "rclone")
	d := startUserQADAV(t)
	proxied := startHostRewritingProxy(t, d.url)

	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(fmt.Sprintf("machine localhost\nlogin %s\npassword %s\n", d.user, d.pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	content := "through the proxy " + randHex(4) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "local.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// The lock makes cadaver send its token in a tagged If header with
	// the proxy's URL on the put, the move and the unlock's neighbours.
	script := strings.Join([]string{
		"mkcol px",
		"put local.txt px/a.txt",
		"copy px/a.txt px/b.txt",
		"move px/b.txt px/c.txt",
		"lock px/c.txt",
		"put local.txt px/c.txt",
		"move px/c.txt px/d.txt",
		"delete px/a.txt",
		"quit",
	}, "\n") + "\n"
	out, err := tool(t, 2*time.Minute, dir, []string{"HOME=" + home}, strings.NewReader(script), "cadaver", proxied)
	if err != nil {
		t.Fatalf("cadaver: %v\n%s", err, out)
	}
	t.Logf("cadaver session through the proxy:\n%s", out)
	for _, want := range []string{
		"Copying `/px/a.txt' to `/px/b.txt':  succeeded.",
		"Moving `/px/b.txt' to `/px/c.txt':  succeeded.",
		"Locking `px/c.txt': succeeded.",
		"Moving `/px/c.txt' to `/px/d.txt':  succeeded.",
		"Deleting `px/a.txt': succeeded.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cadaver output lacks %q", want)
		}
	}
	if strings.Contains(out, "failed") {
		t.Errorf("cadaver reports a failure")
	}
	// Straight to the node: only d.txt is left, with the content, and
	// the lock went with the move (a PUT at c.txt needs no token).
	d.must(t, http.StatusNotFound, "GET", "px/a.txt", nil, "")
	d.must(t, http.StatusNotFound, "GET", "px/b.txt", nil, "")
	if _, got := d.must(t, http.StatusOK, "GET", "px/d.txt", nil, ""); got != content {
		t.Fatalf("px/d.txt = %q, want %q", got, content)
	}
	d.must(t, http.StatusCreated, "PUT", "px/c.txt", nil, "free")

	// rclone's server-side move and copy (MOVE and COPY naming the URL
	// it was given, the proxy's).
	rd := &userqaDAV{url: proxied, user: d.user, pass: d.pass, client: d.client}
	rclone := userqaRclone(t, rd, t.TempDir())
	rclone("moveto", "tarn:px/d.txt", "tarn:px/e.txt")
	rclone("copyto", "tarn:px/e.txt", "tarn:px/f.txt")
	d.must(t, http.StatusNotFound, "GET", "px/d.txt", nil, "")
	for _, name := range []string{"px/e.txt", "px/f.txt"} {
		if _, got := d.must(t, http.StatusOK, "GET", name, nil, ""); got != content {
			t.Fatalf("%s = %q, want %q", name, got, content)
		}
	}
}
