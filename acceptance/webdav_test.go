//go:build acceptance

package acceptance

// WebDAV: the litmus suite, a scripted cadaver session and an rclone
// round trip of a generated tree against a tarn node's WebDAV frontend;
// wrong passwords, read-only accounts.

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/node"
	"github.com/tarnfs/tarn/host/pluginhost"
)

// davTarget is a WebDAV frontend to test and who may log in.
type davTarget struct {
	URL        string // ends in "/"
	User, Pass string
	ROUser     string // a read-only account on the same root ("" if none)
	ROPass     string
	How        string // "tarn dev", "tarn run" or "in-process node"
	Node       *Node  // the client node serving it, for CLI figures
}

// devWebDAV is the webdav entry tarn dev writes into endpoints.json.
type devWebDAV struct {
	WebDAV struct {
		URL      string `json:"url"`
		User     string `json:"user"`
		Password string `json:"password"`
	} `json:"webdav"`
}

// handedOut is the addresses freePort has chosen in this run.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freePort finds a free loopback address for a node to bind later. As
// tarn dev does, it takes the port below the kernel's ephemeral range, so
// no outgoing connection can take it in between.
func freePort(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for try := 0; try < 64; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+mrand.IntN(22000))
		if handedOut.addrs[addr] { // nothing holds it until the node binds
			continue
		}
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			handedOut.addrs[addr] = true
			return addr
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// answers reports whether an HTTP server answers at url within d.
func answers(url string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		c := http.Client{Timeout: 2 * time.Second}
		if res, err := c.Get(url); err == nil {
			res.Body.Close()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startWebDAVNode adds a client node with a [[webdav]] frontend and two
// accounts on one root (alice writes, reader only reads) to g. The root
// file does not exist yet: the node makes the root at its first start.
// The node runs as a real `tarn run` process, which serves WebDAV; a
// binary whose node does not start frontends falls back to an in-process
// node and node.StartWebDAV (and the log says which ran).
func startWebDAVNode(t testing.TB, g *Grid) *davTarget {
	t.Helper()
	n := g.addClient(t, "davclient", GridOptions{NoRun: true})
	prof := filepath.Join(n.Dir, "tarn.toml")
	base, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	capFile := filepath.Join(n.Dir, "private", "dav-root.cap")
	tgt := &davTarget{User: "alice", Pass: "alice-" + randHex(8), ROUser: "reader", ROPass: "reader-" + randHex(8), Node: n}
	listen := freePort(t)
	var b strings.Builder
	b.Write(base)
	fmt.Fprintf(&b, "\n[[webdav]]\nenabled = true\nlisten = %q\nlock_timeout = \"1h\"\n", listen)
	for _, a := range []struct {
		name, pw string
		ro       bool
	}{{tgt.User, tgt.Pass, false}, {tgt.ROUser, tgt.ROPass, true}} {
		h, err := accounts.HashPassword(a.pw)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n[[accounts]]\nname = %q\npassword_hash = %q\nroot_cap_file = %q\nread_only = %v\n", a.name, h, capFile, a.ro)
	}
	if err := os.WriteFile(prof, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tgt.URL = "http://" + listen + "/"

	g.runNode(t, n)
	if answers(tgt.URL, 10*time.Second) {
		tgt.How = "tarn run"
	} else {
		n.proc.Stop(t, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		logf, err := os.OpenFile(filepath.Join(n.Dir, "inprocess.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		nd, err := node.Start(ctx, n.Dir, node.Options{LogOutput: logf, Plugins: pluginhost.Options{Executable: tarnBin}})
		if err != nil {
			t.Fatalf("start %s in-process: %v", n.Name, err)
		}
		t.Cleanup(func() { nd.Stop() })
		if !answers(tgt.URL, time.Second) {
			if _, err := node.StartWebDAV(ctx, nd); err != nil {
				t.Fatalf("start webdav: %v", err)
			}
		}
		tgt.How = "in-process node"
	}
	// The node made the root and wrote its cap.
	b2, err := os.ReadFile(capFile)
	if err != nil || !strings.HasPrefix(string(b2), "tarn:dir:") {
		t.Fatalf("root cap file after the first start: %q (%v)", b2, err)
	}
	return tgt
}

func (g *Grid) storageCount() int { return len(g.Storage()) }

func randHex(n int) string {
	b := make([]byte, n)
	cryptorand.Read(b)
	return hex.EncodeToString(b)
}

// davTargets is the frontend the client tools drive: tarn dev's own when
// it writes one into endpoints.json, else startWebDAVNode's. The second
// is always the node with the read-only account.
func davTargets(t testing.TB) (main, ro *davTarget, g *Grid) {
	t.Helper()
	g = startGrid(t, GridOptions{})
	ro = startWebDAVNode(t, g)
	main = ro
	var ep devWebDAV
	if b, err := os.ReadFile(filepath.Join(g.Dir, "endpoints.json")); err == nil && json.Unmarshal(b, &ep) == nil && ep.WebDAV.URL != "" {
		u := ep.WebDAV.URL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		main = &davTarget{URL: u, User: ep.WebDAV.User, Pass: ep.WebDAV.Password, How: "tarn dev", Node: g.Client}
	}
	t.Logf("WebDAV under test: %s (%s); read-only account on %s (%s)", main.URL, main.How, ro.URL, ro.How)
	return main, ro, g
}

// tool runs an external client to its end, with a timeout.
func tool(t testing.TB, timeout time.Duration, dir string, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %v: %w", name, timeout, err)
	}
	return out.String(), err
}

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (CI installs it: apt-get install %s)", name, name)
	}
}

// litmusSummary matches a suite summary line of litmus.
var litmusSummary = regexp.MustCompile("summary for `([a-z]+)': of (\\d+) tests run: (\\d+) passed, (\\d+) failed")

// TestWebDAV drives one grid's WebDAV frontend with litmus, cadaver and
// rclone, and checks logins and the read-only account.
func TestWebDAV(t *testing.T) {
	main, ro, g := davTargets(t)
	t.Run("litmus", func(t *testing.T) { testLitmus(t, main) })
	t.Run("cadaver", func(t *testing.T) { testCadaver(t, main) })
	t.Run("rclone", func(t *testing.T) { testRclone(t, main) })
	t.Run("logins", func(t *testing.T) { testLogins(t, ro) })
	t.Run("quota", func(t *testing.T) { testQuota(t, ro) })
	t.Run("throughput", func(t *testing.T) { testThroughput(t, g, main) })
}

// throughputSize is the file the throughput figures move each way.
const throughputSize = 256 << 20

// testThroughput: a 256 MiB PUT and GET over WebDAV next to tarn put and
// tarn get of as much (other content, so nothing is deduplicated) on the
// same node, in the same run.
func testThroughput(t *testing.T, g *Grid, d *davTarget) {
	req, err := http.NewRequest("PUT", d.URL+"throughput.bin", newGen(101, throughputSize))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = throughputSize
	req.SetBasicAuth(d.User, d.Pass)
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	res.Body.Close()
	put := time.Since(start)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", res.Status)
	}
	req, _ = http.NewRequest("GET", d.URL+"throughput.bin", nil)
	req.SetBasicAuth(d.User, d.Pass)
	start = time.Now()
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	hw := newHashWriter()
	n, err := io.Copy(hw, res.Body)
	res.Body.Close()
	get := time.Since(start)
	if err != nil || n != throughputSize || hw.Sum() != genHash(101, throughputSize) {
		t.Fatalf("GET: %d bytes (%v), content equal: %v", n, err, hw.Sum() == genHash(101, throughputSize))
	}
	start = time.Now()
	c := g.mustPut(t, d.Node, newGen(102, throughputSize))
	cliPut := time.Since(start)
	start = time.Now()
	sum, n2, r := g.getHash(t, d.Node, c)
	cliGet := time.Since(start)
	if r.Code != 0 || n2 != throughputSize || sum != genHash(102, throughputSize) {
		t.Fatalf("tarn get: %v", r)
	}
	figure(t, "256 MiB: WebDAV PUT %.1f MiB/s, GET %.1f MiB/s; tarn put %.1f MiB/s, tarn get %.1f MiB/s (same node, same run)",
		mbps(throughputSize, put), mbps(throughputSize, get), mbps(throughputSize, cliPut), mbps(throughputSize, cliGet))
}

func testLitmus(t *testing.T, d *davTarget) {
	needTool(t, "litmus")
	out, err := tool(t, 15*time.Minute, t.TempDir(), nil, nil, "litmus", "-k", d.URL, d.User, d.Pass)
	m := litmusSummary.FindAllStringSubmatch(out, -1)
	if len(m) != 5 {
		t.Fatalf("litmus (%v): %d suite summaries, want 5 (basic, copymove, props, locks, http):\n%s", err, len(m), clip(out))
	}
	failed := 0
	for _, s := range m {
		f, _ := strconv.Atoi(s[4])
		failed += f
		figure(t, "litmus %s: %s of %s passed, %s failed", s[1], s[3], s[2], s[4])
	}
	figure(t, "litmus warnings: %d", strings.Count(out, "WARNING:"))
	if skipped := strings.Count(out, "SKIPPED"); skipped > 0 {
		t.Errorf("litmus skipped %d tests", skipped)
	}
	if failed > 0 {
		t.Errorf("litmus: %d tests failed:\n%s", failed, clip(out))
	}
}

func testCadaver(t *testing.T, d *davTarget) {
	needTool(t, "cadaver")
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	host := strings.TrimPrefix(strings.TrimPrefix(d.URL, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	hostname, _, _ := strings.Cut(host, ":")
	if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(fmt.Sprintf("machine %s\nlogin %s\npassword %s\n", hostname, d.User, d.Pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	content := "hello from cadaver " + randHex(4) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "local.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"mkcol cad",
		"put local.txt cad/a.txt",
		"get cad/a.txt out.txt",
		"copy cad/a.txt cad/b.txt",
		"move cad/b.txt cad/c.txt",
		"propset cad/c.txt color blue",
		"propget cad/c.txt color",
		"lock cad/c.txt",
		"unlock cad/c.txt",
		"delete cad/a.txt",
		"ls cad",
		"quit",
	}, "\n") + "\n"
	out, err := tool(t, 2*time.Minute, dir, []string{"HOME=" + home}, strings.NewReader(script), "cadaver", d.URL)
	if err != nil {
		t.Fatalf("cadaver: %v\n%s", err, out)
	}
	t.Logf("cadaver session:\n%s", out)
	for _, want := range []string{
		"Creating `cad': succeeded.",
		"Uploading local.txt to `/cad/a.txt':",
		"Downloading `/cad/a.txt' to out.txt:",
		"Copying `/cad/a.txt' to `/cad/b.txt':  succeeded.",
		"Moving `/cad/b.txt' to `/cad/c.txt':  succeeded.",
		"Setting property on `cad/c.txt': succeeded.",
		"Value of color is: blue",
		"Locking `cad/c.txt': succeeded.",
		"Unlocking `cad/c.txt': succeeded.",
		"Deleting `cad/a.txt': succeeded.",
		"Listing collection `/cad/': succeeded.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cadaver output lacks %q", want)
		}
	}
	// Ten commands report "succeeded." (propget prints the value).
	if n := strings.Count(out, "succeeded."); n != 10 {
		t.Errorf("%d operations succeeded, want 10", n)
	}
	if strings.Contains(out, "failed") {
		t.Errorf("cadaver reports a failure")
	}
	// The listing shows c.txt with its size and not a.txt or b.txt.
	if !regexp.MustCompile(`c\.txt\s+`+strconv.Itoa(len(content))+`\s`).MatchString(out) || regexp.MustCompile(`\s[ab]\.txt\s`).MatchString(out) {
		t.Errorf("the listing is not just c.txt of %d bytes", len(content))
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil || string(got) != content {
		t.Errorf("downloaded %q (%v), want %q", got, err, content)
	}
}

// bigFile is over 100 MiB, as the issue asks.
const bigFile = 101 << 20

// makeTree writes the tree rclone copies: nested and empty folders,
// zero-byte files, Unicode and space names, one file over 100 MiB.
func makeTree(t testing.TB, root string) {
	t.Helper()
	files := map[string]int64{
		"top.txt":                         1234,
		"zero.bin":                        0,
		"a/b/c/deep.dat":                  70_000,
		"a/b/c/zero-deep":                 0,
		"a/b/sibling.txt":                 17,
		"with space/name with spaces.txt": 4096,
		"ünïcødé/日本語のファイル.txt":                         3000,
		"ünïcødé/emoji 🎉 party.md":                     55,
		"ünïcødé/Ελληνικά/κείμενο.txt":                 56,
		"mixed/UPPER lower.TXT":                        1 << 20,
		"mixed/.hidden":                                9,
		"big/large file.bin":                           bigFile,
		"many/" + strings.Repeat("long-", 30) + "name": 100,
	}
	for i := range 40 {
		files[fmt.Sprintf("many/f%02d.txt", i)] = int64(i * 37)
	}
	seed := uint64(1)
	for name, size := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, newGen(seed, size)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		seed++
	}
	for _, d := range []string{"empty", "a/empty-inside", "nested/empty/levels", "with space/empty dir"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// treeDigest lists every file (with its SHA-256) and every empty folder.
func treeDigest(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			if len(ents) == 0 && rel != "." {
				out = append(out, "dir "+rel)
			}
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("file %s %d %x", rel, n, h.Sum(nil)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func testRclone(t *testing.T, d *davTarget) {
	needTool(t, "rclone")
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src"), filepath.Join(dir, "back")
	makeTree(t, src)
	obscured, err := tool(t, time.Minute, dir, nil, nil, "rclone", "obscure", d.Pass)
	if err != nil {
		t.Fatalf("rclone obscure: %v %s", err, obscured)
	}
	env := []string{
		"RCLONE_CONFIG=" + filepath.Join(dir, "rclone.conf"),
		"RCLONE_CONFIG_TARN_TYPE=webdav",
		"RCLONE_CONFIG_TARN_URL=" + d.URL,
		"RCLONE_CONFIG_TARN_VENDOR=other",
		"RCLONE_CONFIG_TARN_USER=" + d.User,
		"RCLONE_CONFIG_TARN_PASS=" + strings.TrimSpace(obscured),
	}
	rclone := func(args ...string) string {
		t.Helper()
		// No whole-run retries (--retries 1): a file that fails fails the
		// test; rclone's own per-request retries of 5xx answers stay.
		out, err := tool(t, 20*time.Minute, dir, env, nil, "rclone", append([]string{"--retries", "1"}, args...)...)
		if err != nil {
			t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, clip(out))
		}
		return out
	}
	start := time.Now()
	rclone("copy", "--create-empty-src-dirs", src, "tarn:tree")
	up := time.Since(start)
	out := rclone("check", src, "tarn:tree")
	if !strings.Contains(out, "0 differences found") {
		t.Fatalf("rclone check:\n%s", out)
	}
	start = time.Now()
	rclone("copy", "--create-empty-src-dirs", "tarn:tree", back)
	down := time.Since(start)
	want, got := treeDigest(t, src), treeDigest(t, back)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("the tree copied back differs:\nwant %v\ngot  %v", want, got)
	}
	var total int64
	filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if fi, err := de.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	figure(t, "rclone over WebDAV: %d entries, %.1f MiB in %v (%.1f MiB/s), back out in %v (%.1f MiB/s)",
		len(want), float64(total)/(1<<20), up.Round(time.Millisecond), mbps(total, up), down.Round(time.Millisecond), mbps(total, down))
}

// testLogins: a wrong password gets 401 with a Basic challenge; the
// read-only account reads but gets 403 for every change.
func testLogins(t *testing.T, d *davTarget) {
	do := func(method, path, user, pw string, hdr map[string]string, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, d.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pw)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("401 without a Basic challenge")
		}
		return res.StatusCode
	}
	if s := do("PUT", "ro-test.txt", d.User, d.Pass, nil, "kept"); s != http.StatusCreated {
		t.Fatalf("PUT by %s: %d", d.User, s)
	}
	if s := do("MKCOL", "ro-dir", d.User, d.Pass, nil, ""); s != http.StatusCreated {
		t.Fatalf("MKCOL by %s: %d", d.User, s)
	}
	proppatch := `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set></D:propertyupdate>`
	for _, tc := range []struct {
		name, method, path, user, pw string
		hdr                          map[string]string
		body                         string
		want                         int
	}{
		{"wrong password", "GET", "ro-test.txt", d.User, "wrong", nil, "", http.StatusUnauthorized},
		{"read-only wrong password", "GET", "ro-test.txt", d.ROUser, d.Pass, nil, "", http.StatusUnauthorized},
		{"read-only GET", "GET", "ro-test.txt", d.ROUser, d.ROPass, nil, "", http.StatusOK},
		{"read-only PROPFIND", "PROPFIND", "", d.ROUser, d.ROPass, map[string]string{"Depth": "1"}, "", http.StatusMultiStatus},
		{"read-only PUT", "PUT", "ro-test.txt", d.ROUser, d.ROPass, nil, "changed", http.StatusForbidden},
		{"read-only PUT new", "PUT", "new.txt", d.ROUser, d.ROPass, nil, "new", http.StatusForbidden},
		{"read-only DELETE", "DELETE", "ro-test.txt", d.ROUser, d.ROPass, nil, "", http.StatusForbidden},
		{"read-only MOVE", "MOVE", "ro-test.txt", d.ROUser, d.ROPass, map[string]string{"Destination": d.URL + "moved.txt"}, "", http.StatusForbidden},
		{"read-only MKCOL", "MKCOL", "newdir", d.ROUser, d.ROPass, nil, "", http.StatusForbidden},
		{"read-only PROPPATCH", "PROPPATCH", "ro-test.txt", d.ROUser, d.ROPass, nil, proppatch, http.StatusForbidden},
		{"read-only DELETE dir", "DELETE", "ro-dir", d.ROUser, d.ROPass, nil, "", http.StatusForbidden},
		{"unchanged after", "GET", "ro-test.txt", d.User, d.Pass, nil, "", http.StatusOK},
		{"not moved", "GET", "moved.txt", d.User, d.Pass, nil, "", http.StatusNotFound},
		{"hostile path", "GET", "..%2f..%2fetc/passwd", d.User, d.Pass, nil, "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := do(tc.method, tc.path, tc.user, tc.pw, tc.hdr, tc.body); s != tc.want {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, s, tc.want)
			}
		})
	}
}

// testQuota: the root reports quota-available-bytes from the storage
// servers' announced free space.
func testQuota(t *testing.T, d *davTarget) {
	body := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/></D:prop></D:propfind>`
	req, _ := http.NewRequest("PROPFIND", d.URL, strings.NewReader(body))
	req.SetBasicAuth(d.User, d.Pass)
	req.Header.Set("Depth", "0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`quota-available-bytes[^>]*>(\d+)<`).FindStringSubmatch(string(b))
	if res.StatusCode != http.StatusMultiStatus || m == nil {
		t.Fatalf("PROPFIND quota: %s\n%s", res.Status, b)
	}
	avail, _ := strconv.ParseInt(m[1], 10, 64)
	if avail <= 0 {
		t.Fatalf("quota-available-bytes %d", avail)
	}
	figure(t, "WebDAV quota-available-bytes on a dev grid: %.1f GiB", float64(avail)/(1<<30))
}
