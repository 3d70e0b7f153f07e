package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/node"
	"github.com/tarnfs/tarn/internal/proctest"
	"github.com/tarnfs/tarn/plugins/builtin"
)

// The test binary doubles as the tarn binary for built-in plugins: run as
// "plugin serve KIND NAME" it serves that plugin, as tarn does.
func TestMain(m *testing.M) {
	builtin.ServeIfAsked(os.Args)
	os.Exit(m.Run())
}

const segSize = 64 << 10

// testGrid is an introducer, storage servers and a client, each a node
// started in this process (their plugins are real child processes).
type testGrid struct {
	intro   *node.Node
	storage []*node.Node
	client  *node.Node
	dirs    map[string]string
	api     *api.Client
}

// logSink collects the nodes' log lines for assertions.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startNode(t *testing.T, dir string, logs io.Writer) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lg := hclog.New(&hclog.LoggerOptions{Name: filepath.Base(dir), Level: hclog.Info, Output: logs})
	n, err := node.Start(ctx, dir, node.Options{Logger: lg})
	if err != nil {
		t.Fatalf("start %s: %v", filepath.Base(dir), err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

func newGrid(t *testing.T, storageNodes int, logs io.Writer) *testGrid {
	t.Helper()
	return newGridWith(t, storageNodes, logs, nil)
}

// newGridWith is newGrid with setStorage changing storage node i's profile
// (from 1).
func newGridWith(t *testing.T, storageNodes int, logs io.Writer, setStorage func(i int, p *conf.Profile)) *testGrid {
	t.Helper()
	root := t.TempDir()
	g := &testGrid{dirs: map[string]string{}}
	secret := make([]byte, 32)
	rand.Read(secret)

	mk := func(name string, set func(p *conf.Profile)) string {
		dir := filepath.Join(root, name)
		p, err := conf.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		p.Node.Name = name
		p.Grid.Name = "test"
		p.Node.APIListen = "127.0.0.1:0" // every node serves its API
		set(p)
		if _, err := node.Prepare(p, secret); err != nil {
			t.Fatal(err)
		}
		if err := node.WriteProfile(p); err != nil {
			t.Fatalf("write profile %s: %v", name, err)
		}
		g.dirs[name] = dir
		return dir
	}
	g.intro = startNode(t, mk("introducer", func(p *conf.Profile) {
		p.Introducer.Enabled = true
		p.Introducer.Listen = []string{"tcp:127.0.0.1:0"}
	}), logs)
	introURL := g.intro.Info().IntroducerURL
	for i := 1; i <= storageNodes; i++ {
		g.storage = append(g.storage, startNode(t, mk(fmt.Sprintf("storage-%d", i), func(p *conf.Profile) {
			p.Storage.Enabled = true
			p.Storage.Listen = []string{"tcp:127.0.0.1:0"}
			p.Storage.ReservedSpace = 1 << 20
			p.Grid.Introducers = []string{introURL}
			if setStorage != nil {
				setStorage(i, p)
			}
		}), logs))
	}
	g.client = startNode(t, mk("client", func(p *conf.Profile) {
		p.Client.Enabled = true
		p.Client.APIListen = "127.0.0.1:0"
		p.Client.Shares = conf.Shares{K: 2, H: 3, N: 3}
		p.Client.SegmentSize = segSize
		p.Client.ServerTimeout = conf.Duration(5 * time.Second)
		p.Grid.Introducers = []string{introURL}
	}), logs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.client.WaitServers(ctx, storageNodes); err != nil {
		t.Fatalf("client never saw the storage servers: %v", err)
	}
	in := g.client.Info()
	tok, err := node.ReadToken(in.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	g.api = &api.Client{BaseURL: in.APIURL, Token: tok}
	return g
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestPutGetThroughAPI(t *testing.T) {
	logs := &logSink{}
	g := newGrid(t, 3, logs)
	ctx := context.Background()
	cases := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"literal limit", 55},
		{"one over literal", 56},
		{"segment-1", segSize - 1},
		{"segment", segSize},
		{"segment+1", segSize + 1},
		{"several segments", 3*segSize + 1234},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(tc.size)
			c, err := g.api.Put(ctx, bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("put: %v", err)
			}
			wantKind := "tarn:chk:"
			if tc.size <= 55 {
				wantKind = "tarn:lit:"
			}
			if !strings.HasPrefix(c, wantKind) {
				t.Errorf("cap %q: want prefix %q", c, wantKind)
			}
			body, size, err := g.api.Get(ctx, c)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if size != int64(len(data)) || !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes (declared %d), want the %d put", len(got), size, len(data))
			}
			// The same bytes again (chunked, size unknown): the same cap.
			c2, err := g.api.Put(ctx, io.MultiReader(bytes.NewReader(data)), -1)
			if err != nil {
				t.Fatalf("put chunked: %v", err)
			}
			if c2 != c {
				t.Errorf("same file, same secret: cap %q then %q", c, c2)
			}
		})
	}
	if !strings.Contains(logs.String(), "uploaded") {
		t.Errorf("no upload logged")
	}
}

func TestRangeAndHead(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	ctx := context.Background()
	data := randomBytes(2*segSize + 777)
	c, err := g.api.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	url := g.api.BaseURL + "/v1/file/" + c
	cases := []struct {
		name, rng    string
		status       int
		from, to     int // expected bytes [from, to)
		contentRange string
	}{
		{"middle across segments", "bytes=65000-70000", 206, 65000, 70001, fmt.Sprintf("bytes 65000-70000/%d", len(data))},
		{"suffix", "bytes=-100", 206, len(data) - 100, len(data), fmt.Sprintf("bytes %d-%d/%d", len(data)-100, len(data)-1, len(data))},
		{"open end", fmt.Sprintf("bytes=%d-", len(data)-5), 206, len(data) - 5, len(data), fmt.Sprintf("bytes %d-%d/%d", len(data)-5, len(data)-1, len(data))},
		{"past the end", fmt.Sprintf("bytes=%d-", len(data)+10), 416, 0, 0, fmt.Sprintf("bytes */%d", len(data))},
		{"whole", "", 200, 0, len(data), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+g.api.Token)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, got)
			}
			if cr := resp.Header.Get("Content-Range"); cr != tc.contentRange {
				t.Errorf("Content-Range %q, want %q", cr, tc.contentRange)
			}
			if tc.status < 300 && !bytes.Equal(got, data[tc.from:tc.to]) {
				t.Errorf("got %d bytes, want bytes %d-%d", len(got), tc.from, tc.to)
			}
		})
	}
	req, _ := http.NewRequest("HEAD", url, nil)
	req.Header.Set("Authorization", "Bearer "+g.api.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: status %d length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, len(data))
	}
}

func TestAPIErrors(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	// A well-formed cap of a file nobody stored.
	var missingCap cap.CHK
	rand.Read(missingCap.Key[:])
	rand.Read(missingCap.UEBHash[:])
	missingCap.K, missingCap.N, missingCap.Size = 2, 3, 1000
	missing := missingCap.String()
	cases := []struct {
		name, method, path, token string
		status                    int
		msg                       string
	}{
		{"no token", "GET", "/v1/file/" + missing, "", 401, "token"},
		{"wrong token", "PUT", "/v1/file", "nope", 401, "token"},
		{"status needs no token over loopback", "GET", "/v1/status", "", 200, `"node_id"`},
		{"malformed cap", "GET", "/v1/file/tarn:chk:zzz", g.api.Token, 400, "malformed"},
		{"not a cap", "GET", "/v1/file/hello", g.api.Token, 400, "tarn:"},
		{"unknown kind", "GET", "/v1/file/tarn:foo:bar", g.api.Token, 400, "unknown kind"},
		{"stored nowhere", "GET", "/v1/file/" + missing, g.api.Token, 404, "no server holds any share"},
		{"no endpoint", "GET", "/v2/x", g.api.Token, 404, "no such endpoint"},
		{"wrong method", "DELETE", "/v1/status", g.api.Token, 405, "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.api.BaseURL+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(string(body), tc.msg) {
				t.Errorf("body %q does not say %q", body, tc.msg)
			}
		})
	}
	// The Go client turns the answers into errors callers branch on.
	_, _, err := g.api.Get(context.Background(), "tarn:chk:zzz")
	if !errors.Is(err, api.ErrBadCap) {
		t.Errorf("bad cap: got %v, want ErrBadCap", err)
	}
	bad := &api.Client{BaseURL: g.api.BaseURL, Token: "wrong"}
	if _, err := bad.Put(context.Background(), strings.NewReader("x"), 1); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("wrong token: got %v, want ErrUnauthorized", err)
	}
	// The read-only routes need no token over loopback.
	if _, err := (&api.Client{BaseURL: g.api.BaseURL}).Status(context.Background()); err != nil {
		t.Errorf("status without a token over loopback: %v", err)
	}
}

func TestStatusInfoAndStop(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	st, err := g.api.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Known != 3 || st.Conn != 3 || len(st.Servers) != 3 {
		t.Errorf("servers known %d connected %d listed %d, want 3", st.Known, st.Conn, len(st.Servers))
	}
	for _, s := range st.Servers {
		if s.LastSeen.IsZero() || !strings.HasPrefix(s.Address, "tarn://") {
			t.Errorf("server %s: last seen %v, address %q", s.NodeID, s.LastSeen, s.Address)
		}
	}
	if len(st.Plugins) != 2 {
		t.Errorf("client plugins: %+v, want codec and transport", st.Plugins)
	}
	for _, p := range st.Plugins {
		if p.Pid <= 0 || p.Health != "ok" {
			t.Errorf("plugin %s/%s: pid %d health %q", p.Kind, p.Name, p.Pid, p.Health)
		}
	}
	if st.NodeID != g.client.Info().NodeID || strings.Join(st.Roles, ",") != "client" {
		t.Errorf("status names node %s roles %v", st.NodeID, st.Roles)
	}

	// node.json while running, gone after Stop; the token file is private.
	dir := g.dirs["storage-1"]
	in, err := node.ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if in.Pid != os.Getpid() || !strings.HasPrefix(in.StorageURL, "tarn://"+in.KeyHash+"@tcp:127.0.0.1:") {
		t.Errorf("node.json: %+v", in)
	}
	fi, err := os.Stat(g.client.Info().TokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	var pids []int
	for _, p := range g.storage[0].Plugins().List() {
		pids = append(pids, p.Pid)
	}
	g.storage[0].Stop()
	if _, err := node.ReadInfo(dir); !errors.Is(err, node.ErrNotRunning) {
		t.Errorf("after stop: ReadInfo gives %v, want ErrNotRunning", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for proctest.Exists(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("plugin pid %d still alive after Stop", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestStartRefusesBrokenFolders(t *testing.T) {
	root := t.TempDir()
	noKey := filepath.Join(root, "nokey")
	p, _ := conf.New(noKey)
	p.Storage.Enabled = true
	os.MkdirAll(noKey, 0o755)
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir, want string
	}{
		{"no profile", filepath.Join(root, "empty"), "no profile"},
		{"no key", noKey, "node key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := node.Start(context.Background(), tc.dir, node.Options{Logger: hclog.NewNullLogger()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestAllRolesInOneNode runs introducer, storage and client in one node:
// the storage server announces to the node's own introducer and the
// client follows it, with no introducer URL in the profile.
func TestAllRolesInOneNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "all")
	p, err := conf.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Introducer.Enabled, p.Storage.Enabled, p.Client.Enabled = true, true, true
	p.Introducer.Listen = []string{"tcp:127.0.0.1:0"}
	p.Storage.Listen = []string{"tcp:127.0.0.1:0"}
	p.Storage.ReservedSpace = 1 << 20
	p.Client.APIListen = "127.0.0.1:0"
	p.Client.Shares = conf.Shares{K: 1, H: 1, N: 1}
	if _, err := node.Prepare(p, nil); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteProfile(p); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, dir, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitServers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	in := n.Info()
	if strings.Join(in.Roles, ",") != "introducer,storage,client" || in.IntroducerURL == "" || in.StorageURL == "" || in.APIURL == "" {
		t.Fatalf("info: %+v", in)
	}
	if got := len(n.Plugins().List()); got != 3 {
		t.Errorf("%d plugins, want codec, storage and transport", got)
	}
	tok, err := node.ReadToken(in.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{BaseURL: in.APIURL, Token: tok}
	data := randomBytes(100_000)
	capStr, err := c.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := c.Get(ctx, capStr)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, want the %d put", len(got), len(data))
	}
}

// TestLoseStorageNodes stops N-K storage nodes: the file still reads;
// one more and the API says how many shares it found and needed.
func TestLoseStorageNodes(t *testing.T) {
	g := newGrid(t, 3, io.Discard)
	ctx := context.Background()
	data := randomBytes(3*segSize + 5)
	c, err := g.api.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	g.storage[0].Stop()
	body, _, err := g.api.Get(ctx, c)
	if err != nil {
		t.Fatalf("get with one of three servers stopped (k=2): %v", err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get with one server stopped: %d bytes, %v", len(got), err)
	}
	g.storage[1].Stop()
	_, _, err = g.api.Get(ctx, c)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable ||
		!strings.Contains(ae.Msg, "1 shares found") || !strings.Contains(ae.Msg, "2 needed") {
		t.Fatalf("get with two of three stopped: %v, want a 503 naming 1 share found and 2 needed", err)
	}
	// An upload cannot reach H=3 either, and says so.
	_, err = g.api.Put(ctx, bytes.NewReader(randomBytes(1000)), 1000)
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Msg, "happiness") {
		t.Fatalf("put with one server left: %v, want a 503 about happiness", err)
	}
}

// TestOneProcessPerNode: a second Start of a running node is refused (two
// processes would share a key, shares and a lease database); after Stop
// the node starts again.
func TestOneProcessPerNode(t *testing.T) {
	g := newGrid(t, 1, io.Discard)
	dir := g.dirs["storage-1"]
	_, err := node.Start(context.Background(), dir, node.Options{Logger: hclog.NewNullLogger()})
	if !errors.Is(err, node.ErrRunning) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second start: %v, want ErrRunning naming the pid", err)
	}
	g.storage[0].Stop()
	n := startNode(t, dir, io.Discard)
	if n.Info().StorageURL == "" {
		t.Errorf("restarted node has no storage URL")
	}
}
