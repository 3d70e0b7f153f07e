package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/metrics"
)

// networkIP returns one of this machine's addresses that is not the
// loopback, or "" when it has none.
func networkIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestListen: any host:port is accepted now (a node may serve its page
// and metrics on a private address); an address of no interface or no
// port is refused.
func TestListen(t *testing.T) {
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"[::1]:0", true},
		{"localhost:0", true},
		{"0.0.0.0:0", true},
		{":0", true},
		{"10.1.2.3:0", false}, // no such interface here
		{"nonsense", false},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			s, err := api.Start(api.Config{Listen: tc.addr, Token: "t", Files: &memFiles{}})
			if s != nil {
				if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") && !strings.HasPrefix(s.URL(), "http://[::1]:") {
					t.Errorf("URL %s: want a loopback URL the CLI can dial", s.URL())
				}
				s.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("Start on %s: %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
}

// TestAccess: over loopback the read-only routes need no token and the
// file routes need it; from the network every route needs the token and
// the file routes are refused even with it.
func TestAccess(t *testing.T) {
	files := &memFiles{files: map[string][]byte{}}
	s, err := api.Start(api.Config{Listen: "0.0.0.0:0", Token: "sekrit", Files: files, Metrics: metrics.New(),
		Status: func(context.Context) api.Status { return api.Status{Name: "n1"} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL(), "http://"))
	lit := cap.Literal{Data: []byte("hi")}.String()
	via := map[string]string{"loopback": "127.0.0.1"}
	if ip := networkIP(); ip != "" {
		via["network"] = ip
	}
	cases := []struct {
		via, method, path, token string
		want                     int
		host                     string // Host header; "" the URL's
	}{
		{"loopback", "GET", "/", "", 200, ""},
		{"loopback", "GET", "/v1/status", "", 200, ""},
		{"loopback", "GET", "/metrics", "", 200, ""},
		{"loopback", "HEAD", "/", "", 200, ""},
		{"loopback", "POST", "/v1/status", "", 401, ""},
		{"loopback", "GET", "/v1/file/" + lit, "", 401, ""},
		{"loopback", "GET", "/v1/file/" + lit, "wrong", 401, ""},
		{"loopback", "GET", "/v1/file/" + lit, "sekrit", 404, ""}, // past the access check
		{"loopback", "PUT", "/v1/file", "sekrit", 201, ""},
		{"network", "GET", "/", "", 401, ""},
		{"network", "GET", "/metrics", "", 401, ""},
		{"network", "GET", "/metrics", "sekrit", 200, ""},
		{"network", "GET", "/v1/status", "sekrit", 200, ""},
		{"network", "GET", "/v1/file/" + lit, "sekrit", 403, ""},
		{"network", "PUT", "/v1/file", "sekrit", 403, ""},
		{"network", "PUT", "/v1/file", "", 401, ""},
		{"loopback", "GET", "/", "", 200, "localhost"},
		{"loopback", "GET", "/v1/status", "", 401, "evil.example:80"}, // DNS rebinding
		{"loopback", "GET", "/v1/status", "sekrit", 200, "evil.example:80"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %s %s token=%q host=%q", tc.via, tc.method, tc.path, tc.token, tc.host), func(t *testing.T) {
			host, ok := via[tc.via]
			if !ok {
				t.Skip("this machine has no network address")
			}
			req, _ := http.NewRequest(tc.method, "http://"+net.JoinHostPort(host, port)+tc.path, strings.NewReader("data"))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
}

// TestReadOnlyNode: a server without Files (a storage node or an
// introducer) serves the page, status and metrics, and says so for the
// file routes.
func TestReadOnlyNode(t *testing.T) {
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "t", Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for path, want := range map[string]int{"/": 200, "/v1/status": 200, "/metrics": 200} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	c := &api.Client{BaseURL: s.URL(), Token: "t"}
	_, err = c.Put(context.Background(), strings.NewReader("x"), 1)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "runs no client") {
		t.Errorf("put on a node without a client: %v", err)
	}
}

// TestPage: the status page is one HTML document with the node's name,
// roles, plugins, servers, counters and operations, no scripts and no
// other resources.
func TestPage(t *testing.T) {
	_, _, c := newServer(t)
	ctx := context.Background()
	if _, err := c.Put(ctx, strings.NewReader("hello page"), 10); err != nil {
		t.Fatal(err)
	}
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "t", Files: &memFiles{files: map[string][]byte{}},
		Status: func(context.Context) api.Status {
			return api.Status{Name: "node <one>", NodeID: "v1-abc", Roles: []string{"storage", "client"}, Version: "tarn/0.1",
				Shares:  api.Shares{K: 1, H: 1, N: 1},
				Plugins: []api.PluginStatus{{Kind: "codec", Name: "reedsolomon", Pid: 4242, Health: "ok", Restarts: 2, LastErr: "exit status 1"}},
				Servers: []api.ServerStatus{{NodeID: "v1-server", Nickname: "s1", Connected: true, FreeSpace: 3 << 30, LastSeen: time.Now().Add(-5 * time.Second)}},
				Storage: &api.StorageStatus{SharesSealed: 7, CorruptionAdvice: 1, Requests: map[string]int64{"allocate": 3}}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	uc := &api.Client{BaseURL: s.URL(), Token: "t"}
	if _, err := uc.Put(ctx, strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	for _, want := range []string{
		`<h1 id="node-name">node &lt;one&gt;</h1>`, // escaped
		`<span class="role">storage</span><span class="role">client</span>`,
		`http-equiv="refresh"`,
		"<td>reedsolomon</td>", "<td>4242</td>", "exit status 1",
		`<span id="servers-known">1</span> known`, "<td>s1</td>", "3.0 GiB", "5s ago",
		`<td id="uploads">1</td>`, "<td>upload</td>",
		`<td id="shares-sealed">7</td>`, `<td id="corruption-advisories">1</td>`, "calls: allocate",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "<link", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("page has %q: it must need nothing else", bad)
		}
	}
}

// shortFile fails after half its bytes, as a download that loses its
// servers mid-way.
type shortFile struct{ data []byte }

func (f shortFile) Size() int64 { return int64(len(f.data)) }
func (f shortFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(f.data).ReadAt(p, off)
}
func (f shortFile) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.data[:len(f.data)/2])
	if err != nil {
		return int64(n), err
	}
	return int64(n), errors.New("segment 1: not enough good shares: 0 found")
}

type shortFiles struct{ memFiles }

func (s *shortFiles) Open(ctx context.Context, c cap.Cap) (api.File, error) {
	return shortFile{data: bytes.Repeat([]byte("x"), 1<<16)}, nil
}

// TestTrailer: a download that fails after its status line tells a
// client that takes trailers why (Tarn-Error), and any other client sees a
// short Content-Length body.
func TestTrailer(t *testing.T) {
	m := metrics.New()
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "t", Files: &shortFiles{}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	lit := cap.Literal{Data: []byte("any")}.String()
	c := &api.Client{BaseURL: s.URL(), Token: "t"}
	body, size, err := c.Get(context.Background(), lit)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, body)
	body.Close()
	if size != 1<<16 || n != 1<<15 {
		t.Errorf("size %d, read %d", size, n)
	}
	if !errors.Is(err, api.ErrTruncated) || !strings.Contains(err.Error(), "not enough good shares") {
		t.Errorf("read error %v: want ErrTruncated with the node's reason", err)
	}

	req, _ := http.NewRequest("GET", s.URL()+"/v1/file/"+lit, nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ContentLength != 1<<16 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("without TE: Content-Length %d, read %d, err %v; want a short body", resp.ContentLength, n, err)
	}
	st, _ := c.Status(context.Background())
	if st.Counters.Failures != 2 || len(st.Recent) != 2 || !strings.Contains(st.Recent[0].Error, "not enough good shares") {
		t.Errorf("failures %d, recent %+v", st.Counters.Failures, st.Recent)
	}
}

// TestRates: Counters are sampled and their growth shown per second.
func TestRates(t *testing.T) {
	var n float64
	s, err := api.Start(api.Config{Listen: "127.0.0.1:0", Token: "t",
		Counters: func() map[string]float64 { n += 10; return map[string]float64{"uploads": n, "bytes up": 2 * n} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	time.Sleep(2500 * time.Millisecond)
	st := s.Status(context.Background())
	if st.RatesOver < 1.5 || st.Rates["uploads"] <= 0 || st.Rates["bytes up"] != 2*st.Rates["uploads"] {
		t.Errorf("rates %v over %v", st.Rates, st.RatesOver)
	}
}
