//go:build acceptance

package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/ssh"
)

// chromium returns Debian's chromium, or skips (fails when
// TARN_REQUIRE_BROWSER is set, as CI does).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("TARN_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH and TARN_REQUIRE_BROWSER is set (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// browse runs headless chromium with args and the URL, and returns what
// it printed on stdout.
func browse(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	// Its own process group, so that its helper processes go with it; and
	// managed, so that the harness's reaper leaves it to Wait.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Start()
	if err == nil {
		manage(cmd.Process.Pid, true)
		err = cmd.Wait()
		manage(cmd.Process.Pid, false)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium %v %s: %v\n%s", args, url, err, tail(errb.String(), 2000))
	}
	return out.String()
}

// apiInfo is n's node.json, which must name its API.
func apiInfo(t *testing.T, n *Node) NodeInfo {
	t.Helper()
	in := readNodeInfo(t, n)
	if in.APIURL == "" {
		t.Fatalf("%s: node.json has no api_url: every node serves its status page", n.Name)
	}
	return in
}

// domInt reads the number in the element with that id.
func domInt(t *testing.T, dom, id string) int {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>(\d+)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no number in #%s of the page:\n%s", id, tail(dom, 4000))
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// scrapeCounter sums a counter's series whose labels include want (0
// when it has none yet).
func scrapeCounter(t *testing.T, base, name string, want map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", base, err)
	}
	f, ok := fams[name]
	if !ok {
		return 0 // a labelled counter appears with its first event
	}
	var v float64
next:
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if w, ok := want[lp.GetName()]; ok && w != lp.GetValue() {
				continue next
			}
		}
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return v
}

// TestStatusPage: every node of a grid serves its status page on its
// local API; headless Chromium loads each one and the DOM shows the node's
// name, roles, plugins and figures (the client counts an upload made with
// tarn put), a screenshot is a real PNG, /metrics moves with a put, and
// `tarn status` prints the same for a storage node.
func TestStatusPage(t *testing.T) {
	bin := chromium(t)
	g := startGrid(t, GridOptions{})
	storage := g.Storage()
	g.waitServers(t, g.Client, len(storage), time.Minute)
	client := apiInfo(t, g.Client)

	before := scrapeCounter(t, client.APIURL, "tarn_uploads_total", map[string]string{"result": "ok"})
	data := genBytes(1010, 2<<20)
	g.mustPut(t, g.Client, bytes.NewReader(data))
	after := scrapeCounter(t, client.APIURL, "tarn_uploads_total", map[string]string{"result": "ok"})
	if after != before+1 {
		t.Errorf("tarn_uploads_total{result=\"ok\"}: %v before the put, %v after; want one more", before, after)
	}
	if got := scrapeCounter(t, client.APIURL, "tarn_api_file_bytes_total", map[string]string{"direction": "in"}); got < float64(len(data)) {
		t.Errorf("tarn_api_file_bytes_total{direction=\"in\"} = %v, want at least %d", got, len(data))
	}
	figure(t, "metrics: tarn_uploads_total{result=\"ok\"} went %v -> %v with one tarn put", before, after)

	sealed := 0
	for _, n := range g.Nodes {
		t.Run(n.Name, func(t *testing.T) {
			in := apiInfo(t, n)
			start := time.Now()
			dom := browse(t, bin, in.APIURL+"/", "--dump-dom")
			figure(t, "status page of %s (%s) rendered by headless chromium in %v", n.Name, n.Role, time.Since(start).Round(time.Millisecond))
			for _, want := range []string{
				`<h1 id="node-name">` + in.Name + `</h1>`,
				`<span class="role">` + n.Role + `</span>`,
				`<dd class="mono" id="node-id">` + in.NodeID + `</dd>`,
			} {
				if !strings.Contains(dom, want) {
					t.Errorf("the page lacks %q:\n%s", want, tail(dom, 4000))
				}
			}
			// A plugin row: kind, name, version, pid, health "ok".
			row := regexp.MustCompile(`<tr class="plugin"><td>(codec|storage|transport)</td><td>[a-z]+</td><td>[^<]*</td><td>([1-9]\d*)</td><td class="ok">ok</td>`)
			if !row.MatchString(dom) {
				t.Errorf("no healthy plugin row with a pid:\n%s", tail(dom, 4000))
			}
			switch n.Role {
			case "client":
				if got := domInt(t, dom, "servers-known"); got != len(storage) {
					t.Errorf("the client's page shows %d servers known, want %d", got, len(storage))
				}
				if got := domInt(t, dom, "uploads"); got < 1 {
					t.Errorf("the client's page counts %d uploads after a tarn put", got)
				}
				if !strings.Contains(dom, "<td>upload</td>") {
					t.Errorf("no upload among the recent operations:\n%s", tail(dom, 4000))
				}
				shot := filepath.Join(t.TempDir(), "status.png")
				browse(t, bin, in.APIURL+"/", "--screenshot="+shot, "--window-size=1280,1400", "--hide-scrollbars")
				png, err := os.ReadFile(shot)
				if err != nil {
					t.Fatal(err)
				}
				if len(png) < 2000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
					t.Fatalf("screenshot: %d bytes, PNG signature %v", len(png), bytes.HasPrefix(png, []byte("\x89PNG")))
				}
				figure(t, "screenshot of the client's status page: %d bytes of PNG", len(png))
				if keep := os.Getenv("TARN_KEEP_SCREENSHOT"); keep != "" {
					os.WriteFile(keep, png, 0o644)
				}
			case "introducer":
				if got := domInt(t, dom, "servers-known"); got != len(storage) {
					t.Errorf("the introducer's page shows %d servers, want %d", got, len(storage))
				}
			case "storage":
				sealed += domInt(t, dom, "shares-sealed")
				domInt(t, dom, "corruption-advisories")
				if strings.Contains(dom, `id="servers"`) {
					t.Errorf("a storage node's page lists servers")
				}
			}
		})
	}
	// The put placed n=5 shares, one per storage node at least.
	if sealed < 5 {
		t.Errorf("the storage nodes' pages count %d shares sealed in all, want at least 5", sealed)
	}

	// tarn status of a storage node: the same figures as text and JSON.
	r := mustTarn(t, CLI{}, "status", "--node", storage[0].Dir)
	if !strings.Contains(r.Stdout, "roles: storage") || !strings.Contains(r.Stdout, "storage: ") || !strings.Contains(r.Stdout, "shares sealed") {
		t.Errorf("tarn status of a storage node:\n%s", r.Stdout)
	}
	r = mustTarn(t, CLI{}, "status", "--json", "--node", storage[0].Dir)
	var st struct {
		Storage *struct {
			SharesSealed int `json:"shares_sealed"`
		} `json:"storage"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.Storage == nil {
		t.Errorf("tarn status --json of a storage node: %v\n%s", err, r.Stdout)
	}
	frontendMetrics(t, g, client.APIURL)
}

// frontendMetrics: a WebDAV request and an SFTP session on the dev grid's
// client move tarn_webdav_requests_total and tarn_sftp_sessions_total.
func frontendMetrics(t *testing.T, g *Grid, api string) {
	b, err := os.ReadFile(filepath.Join(g.Dir, "endpoints.json"))
	if err != nil {
		t.Logf("no endpoints.json (a manual grid): frontend metrics not checked")
		return
	}
	var ep struct {
		WebDAV *struct {
			URL, User, Password string
		} `json:"webdav"`
		SFTP *sftpEndpoint `json:"sftp"`
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatalf("endpoints.json: %v", err)
	}
	if ep.WebDAV != nil {
		before := scrapeCounter(t, api, "tarn_webdav_requests_total", map[string]string{"method": "PROPFIND"})
		req, _ := http.NewRequest("PROPFIND", ep.WebDAV.URL, nil)
		req.SetBasicAuth(ep.WebDAV.User, ep.WebDAV.Password)
		req.Header.Set("Depth", "0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if after := scrapeCounter(t, api, "tarn_webdav_requests_total", map[string]string{"method": "PROPFIND"}); after != before+1 {
			t.Errorf("tarn_webdav_requests_total{method=\"PROPFIND\"}: %v, then %v after one PROPFIND", before, after)
		}
	}
	if ep.SFTP != nil {
		before := scrapeCounter(t, api, "tarn_sftp_sessions_total", nil)
		cfg := &ssh.ClientConfig{User: ep.SFTP.User, Auth: []ssh.AuthMethod{ssh.Password(ep.SFTP.Password)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second}
		c, err := ssh.Dial("tcp", ep.SFTP.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.RequestSubsystem("sftp"); err != nil {
			t.Fatal(err)
		}
		sess.Close()
		c.Close()
		if after := scrapeCounter(t, api, "tarn_sftp_sessions_total", nil); after != before+1 {
			t.Errorf("tarn_sftp_sessions_total: %v, then %v after one session", before, after)
		}
	}
}
