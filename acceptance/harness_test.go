//go:build acceptance

package acceptance

// The harness: the tarn binary, grids of real tarn processes (started by
// `tarn dev`, or node by node with `tarn init` and `tarn run`), CLI helpers
// bound to a node, faults (kill -9, SIGSTOP, flipped share bytes), node
// logs, and the figures the suite measures.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/conf"
	storagedisk "github.com/tarnfs/tarn/plugins/storage-disk"
	"github.com/tarnfs/tarn/sdk/storage"
)

// tarnBin is the binary under test.
var tarnBin string

func TestMain(m *testing.M) {
	stopReaper := startReaper()
	bin, cleanup, err := locateBinary()
	if err != nil {
		fmt.Fprintf(os.Stderr, "acceptance: %v\n", err)
		os.Exit(2)
	}
	tarnBin = bin
	code := m.Run()
	if left := sweep(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "acceptance: killed %d processes left behind by tests:\n", len(left))
		for _, p := range left {
			fmt.Fprintf(os.Stderr, "  %v\n", p)
		}
		if code == 0 {
			code = 1
		}
	}
	stopReaper()
	printFigures(os.Stdout)
	cleanup()
	os.Exit(code)
}

// locateBinary returns $TARN_BIN, or builds the tarn binary once into a
// temporary folder.
func locateBinary() (string, func(), error) {
	if b := os.Getenv("TARN_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			return "", nil, err
		}
		if st, err := os.Stat(abs); err != nil || st.Mode().Perm()&0o111 == 0 {
			return "", nil, fmt.Errorf("TARN_BIN=%s is not an executable file (%v)", b, err)
		}
		return abs, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "tarn-acceptance-bin-")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "tarn")
	cmd := exec.Command("go", "build", "-o", bin, "./host/cmd/tarn")
	cmd.Dir = ".." // the module root, from acceptance/
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build tarn: %v\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// ---- figures -------------------------------------------------------------

var figures struct {
	sync.Mutex
	lines []string
}

// figure records a measured figure: logged by the test and printed again
// at the end of the run.
func figure(t testing.TB, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Logf("FIGURE: %s", s)
	figures.Lock()
	figures.lines = append(figures.lines, t.Name()+": "+s)
	figures.Unlock()
}

func printFigures(w io.Writer) {
	figures.Lock()
	defer figures.Unlock()
	if len(figures.lines) == 0 {
		return
	}
	fmt.Fprintln(w, "acceptance figures:")
	for _, l := range figures.lines {
		fmt.Fprintln(w, "  "+l)
	}
	// go test hides a passing package's output, so the figures also go to
	// a file: $TARN_FIGURES, else beside $TARN_BIN (bin/ under make).
	p := os.Getenv("TARN_FIGURES")
	if p == "" && os.Getenv("TARN_BIN") != "" {
		p = filepath.Join(filepath.Dir(tarnBin), "acceptance-figures.txt")
	}
	if p != "" {
		if err := os.WriteFile(p, []byte(strings.Join(figures.lines, "\n")+"\n"), 0o644); err == nil {
			fmt.Fprintf(w, "figures written to %s\n", p)
		}
	}
}

func mbps(n int64, d time.Duration) float64 {
	return float64(n) / (1 << 20) / d.Seconds()
}

// ---- data ----------------------------------------------------------------

// marker is a plaintext string written at the start of every 64 KiB block
// of generated data; no share file may contain it.
const marker = "TARN-ACCEPTANCE-PLAINTEXT-MARKER:"

const genBlock = 64 << 10

// gen is a deterministic stream of size bytes: each 64 KiB block is the
// marker followed by ChaCha8 output seeded by (seed, block number), so the
// bytes do not depend on how the stream is read.
type gen struct {
	seed      uint64
	size, off int64
	buf       []byte
	bufBlock  int64
}

func newGen(seed uint64, size int64) *gen {
	return &gen{seed: seed, size: size, buf: make([]byte, genBlock), bufBlock: -1}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.off < g.size {
		blk := g.off / genBlock
		if blk != g.bufBlock {
			var key [32]byte
			binaryPut(key[:8], g.seed)
			binaryPut(key[8:16], uint64(blk))
			rand.NewChaCha8(key).Read(g.buf)
			copy(g.buf, marker)
			g.bufBlock = blk
		}
		in := g.off % genBlock
		c := copy(p[n:], g.buf[in:min(int64(genBlock), in+g.size-g.off)])
		n += c
		g.off += int64(c)
	}
	return n, nil
}

func binaryPut(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// genBytes is a whole generated file in memory (small sizes only).
func genBytes(seed uint64, size int64) []byte {
	b, _ := io.ReadAll(newGen(seed, size))
	if b == nil {
		b = []byte{}
	}
	return b
}

// genHash is the SHA-256 of a generated stream.
func genHash(seed uint64, size int64) string {
	h := sha256.New()
	io.Copy(h, newGen(seed, size))
	return hex.EncodeToString(h.Sum(nil))
}

// hashWriter hashes and counts what is written to it.
type hashWriter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func newHashWriter() *hashWriter { return &hashWriter{h: sha256.New()} }

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func (w *hashWriter) Sum() string { return hex.EncodeToString(w.h.Sum(nil)) }

// ---- grids ---------------------------------------------------------------

// Node is one tarn node process of a grid.
type Node struct {
	Name string
	Role string // "introducer", "storage", "client"
	Dir  string
	Pid  int
	proc *Proc // set when the harness itself started this process
	logs []string
}

// NodeInfo is DIR/node.json of a running node.
type NodeInfo struct {
	NodeID        string   `json:"node_id"`
	KeyHash       string   `json:"key_hash"`
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	Pid           int      `json:"pid"`
	IntroducerURL string   `json:"introducer_url"`
	StorageURL    string   `json:"storage_url"`
	APIURL        string   `json:"api_url"`
	TokenFile     string   `json:"token_file"`
}

// Endpoints is D/endpoints.json written by `tarn dev`.
type Endpoints struct {
	Introducer string `json:"introducer"`
	Client     struct {
		APIURL    string `json:"api_url"`
		NodeDir   string `json:"node_dir"`
		TokenFile string `json:"token_file"`
	} `json:"client"`
	Nodes []struct {
		Name string `json:"name"`
		Role string `json:"role"`
		Dir  string `json:"dir"`
		Pid  int    `json:"pid"`
	} `json:"nodes"`
}

// Grid is a running grid of tarn processes.
type Grid struct {
	Dir        string
	Name       string // the grid's name (grid.name)
	Introducer string // the introducer's node URL
	GridSecret string // path of the grid secret file
	Nodes      []*Node
	Client     *Node
	dev        *Proc      // tarn dev, when it started the grid
	owner      testing.TB // the test that started the grid: its processes live as long
}

// GridOptions shape a grid. The zero value is the dev grid: 5 storage
// nodes, K=3 H=4 N=5.
type GridOptions struct {
	StorageNodes  int
	ServerTimeout string // client.server_timeout; "" keeps the default
	SegmentSize   string // client.segment_size; "" keeps the default
	// Manual builds the grid node by node with tarn init and tarn run,
	// instead of tarn dev (needed to change the client's profile).
	Manual bool
	// Dir is the grid's folder (tarn dev --dir); default a new temp dir.
	Dir string
	// Edit changes a client profile written by tarn init (addClient).
	Edit func(profile string) string
	// NoRun makes addClient write the node folder without running it.
	NoRun bool
	// StorageEdit changes the profile of storage node i (from 0) of a
	// manual grid.
	StorageEdit func(i int, profile string) string
}

func (o GridOptions) storageNodes() int {
	if o.StorageNodes == 0 {
		return 5
	}
	return o.StorageNodes
}

// startGrid starts a grid that is stopped when the test ends.
func startGrid(t testing.TB, o GridOptions) *Grid {
	t.Helper()
	start := time.Now()
	var g *Grid
	if o.Manual || !haveDev() {
		g = startManualGrid(t, o)
	} else {
		g = startDevGrid(t, o)
	}
	p, err := conf.Load(g.Client.Dir)
	if err != nil {
		t.Fatalf("load the client's profile: %v", err)
	}
	g.Name = p.Grid.Name
	g.waitServers(t, g.Client, o.storageNodes(), 60*time.Second)
	t.Logf("grid of %d storage nodes up in %v (%s)", o.storageNodes(), time.Since(start).Round(time.Millisecond), g.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			g.dumpLogs(t)
		}
	})
	return g
}

var devOnce struct {
	sync.Once
	ok bool
}

// haveDev says whether the binary has `tarn dev`.
func haveDev() bool {
	devOnce.Do(func() {
		devOnce.ok = exec.Command(tarnBin, "dev", "--help").Run() == nil
	})
	return devOnce.ok
}

// startDevGrid runs `tarn dev --dir D --storage-nodes N` and waits for
// D/endpoints.json.
func startDevGrid(t testing.TB, o GridOptions) *Grid {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	g := &Grid{Dir: dir, owner: t}
	g.dev = startProc(t, "tarn dev", filepath.Join(dir, "dev.log"),
		"dev", "--dir", dir, "--storage-nodes", fmt.Sprint(o.storageNodes()))
	g.loadEndpoints(t, 90*time.Second)
	return g
}

// loadEndpoints waits for endpoints.json naming live processes and fills
// the grid's nodes from it.
func (g *Grid) loadEndpoints(t testing.TB, d time.Duration) {
	t.Helper()
	path := filepath.Join(g.Dir, "endpoints.json")
	deadline := time.Now().Add(d)
	for {
		var ep Endpoints
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &ep)
		}
		if err == nil && len(ep.Nodes) > 0 && ep.Client.NodeDir != "" {
			allAlive := true
			for _, n := range ep.Nodes {
				allAlive = allAlive && n.Pid > 0 && alive(n.Pid)
			}
			if allAlive {
				g.Introducer = ep.Introducer
				g.Nodes = nil
				for _, n := range ep.Nodes {
					node := &Node{Name: n.Name, Role: n.Role, Dir: n.Dir, Pid: n.Pid}
					g.Nodes = append(g.Nodes, node)
					if filepath.Clean(n.Dir) == filepath.Clean(ep.Client.NodeDir) {
						g.Client = node
					}
				}
				if g.Client == nil {
					t.Fatalf("%s: client node_dir %s is not among the nodes", path, ep.Client.NodeDir)
				}
				for _, n := range g.Nodes {
					if n.Role == "introducer" {
						g.GridSecret = filepath.Join(n.Dir, "private", "grid.secret")
					}
				}
				return
			}
		}
		if g.dev != nil && g.dev.Exited() {
			b, _ := os.ReadFile(g.dev.Log)
			t.Fatalf("tarn dev exited (%v) before writing %s:\n%s", g.dev.err, path, clip(string(b)))
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(g.Dir, "dev.log"))
			t.Fatalf("no usable %s after %v (last error: %v); tarn dev log:\n%s", path, d, err, clip(string(b)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startManualGrid builds the dev grid's shape by hand: tarn init for each
// node (one grid secret, the introducer's URL), profile edits (loopback,
// port 0, shares 3/4/5), and tarn run for each.
func startManualGrid(t testing.TB, o GridOptions) *Grid {
	t.Helper()
	g := &Grid{Dir: t.TempDir(), owner: t}
	intro := g.initNode(t, "introducer", "introducer", func(p string) string {
		p = setTOML(p, "node", "api_listen", `"127.0.0.1:0"`)
		return setTOML(p, "introducer", "listen", `["tcp:127.0.0.1:0"]`)
	})
	info := g.runNode(t, intro)
	g.Introducer = info.IntroducerURL
	g.GridSecret = filepath.Join(intro.Dir, "private", "grid.secret")
	var storage []*Node
	for i := range o.storageNodes() {
		n := g.initNode(t, "storage", fmt.Sprintf("storage-%d", i+1), func(p string) string {
			// Every node serves its API: five storage nodes on one
			// machine need five ports.
			p = setTOML(p, "node", "api_listen", `"127.0.0.1:0"`)
			p = setTOML(p, "storage", "listen", `["tcp:127.0.0.1:0"]`)
			p = setTOML(p, "storage", "reserved_space", `"0"`)
			if o.StorageEdit != nil {
				p = o.StorageEdit(i, p)
			}
			return p
		})
		storage = append(storage, n)
	}
	for _, n := range storage {
		n.proc = startProcOwned(t, g.owner, n.Name, filepath.Join(n.Dir, "run.log"), "run", n.Dir)
	}
	for _, n := range storage {
		g.waitNodeJSON(t, n)
	}
	g.Client = g.addClient(t, "client", o)
	return g
}

// addClient adds a client node (tarn init --profile client) that joins the
// grid through its introducer, and runs it.
func (g *Grid) addClient(t testing.TB, name string, o GridOptions) *Node {
	t.Helper()
	n := g.initNode(t, "client", name, func(p string) string {
		if g.Name != "" {
			p = setTOML(p, "grid", "name", fmt.Sprintf("%q", g.Name))
		}
		p = setTOML(p, "node", "api_listen", `"127.0.0.1:0"`)
		p = setTOML(p, "client.shares", "k", "3")
		p = setTOML(p, "client.shares", "h", "4")
		p = setTOML(p, "client.shares", "n", "5")
		if o.ServerTimeout != "" {
			p = setTOML(p, "client", "server_timeout", fmt.Sprintf("%q", o.ServerTimeout))
		}
		if o.SegmentSize != "" {
			p = setTOML(p, "client", "segment_size", fmt.Sprintf("%q", o.SegmentSize))
		}
		if o.Edit != nil {
			p = o.Edit(p)
		}
		return p
	})
	if !o.NoRun {
		g.runNode(t, n)
	}
	return n
}

// initNode runs tarn init for a node of the grid and edits its profile.
func (g *Grid) initNode(t testing.TB, role, name string, edit func(string) string) *Node {
	t.Helper()
	dir := filepath.Join(g.Dir, name)
	args := []string{"init", "--profile", role, "--name", name}
	if g.GridSecret != "" {
		args = append(args, "--grid-secret", g.GridSecret)
	}
	if g.Introducer != "" {
		args = append(args, "--introducer", g.Introducer)
	}
	mustTarn(t, CLI{}, append(args, dir)...)
	prof := filepath.Join(dir, "tarn.toml")
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prof, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: name, Role: role, Dir: dir}
	g.Nodes = append(g.Nodes, n)
	return n
}

// runNode starts `tarn run DIR` for n and waits for its node.json.
func (g *Grid) runNode(t testing.TB, n *Node) NodeInfo {
	t.Helper()
	n.proc = startProcOwned(t, g.owner, n.Name, filepath.Join(n.Dir, "run.log"), "run", n.Dir)
	return g.waitNodeJSON(t, n)
}

// waitNodeJSON waits for the node.json of n's current process.
func (g *Grid) waitNodeJSON(t testing.TB, n *Node) NodeInfo {
	t.Helper()
	var info NodeInfo
	pid := n.proc.Pid()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(n.Dir, "node.json"))
		if err == nil && json.Unmarshal(b, &info) == nil && info.Pid == pid {
			n.Pid = pid
			return info
		}
		if n.proc.Exited() {
			b, _ := os.ReadFile(n.proc.Log)
			t.Fatalf("%s: tarn run exited (%v) before node.json:\n%s", n.Name, n.proc.err, clip(string(b)))
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.proc.Log)
			t.Fatalf("%s: no node.json for pid %d after 60s:\n%s", n.Name, pid, clip(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restart runs a stopped or killed node again with `tarn run DIR`, as an
// operator would, and waits until the client sees all storage nodes.
func (g *Grid) restart(t testing.TB, n *Node) {
	t.Helper()
	if alive(n.Pid) {
		t.Fatalf("restart %s: pid %d is still alive", n.Name, n.Pid)
	}
	n.proc = startProcOwned(t, g.owner, n.Name, filepath.Join(n.Dir, "run.log"), "run", n.Dir)
	g.waitNodeJSON(t, n)
}

// setTOML sets key = value in [section] of a profile written by tarn init:
// it replaces the key's line (commented out or not), or adds one below the
// section's header.
func setTOML(text, section, key, value string) string {
	lines := strings.Split(text, "\n")
	in := false
	header := -1
	keyRe := regexp.MustCompile(`^#?` + regexp.QuoteMeta(key) + `\s*=`)
	for i, l := range lines {
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "[") {
			in = s == "["+section+"]"
			if in {
				header = i
			}
			continue
		}
		if in && keyRe.MatchString(s) {
			lines[i] = key + " = " + value
			return strings.Join(lines, "\n")
		}
	}
	if header < 0 {
		return text + "\n[" + section + "]\n" + key + " = " + value + "\n"
	}
	lines = append(lines[:header+1], append([]string{key + " = " + value}, lines[header+1:]...)...)
	return strings.Join(lines, "\n")
}

// Storage is the grid's storage nodes, in name order.
func (g *Grid) Storage() []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		if n.Role == "storage" {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Status is what `tarn status --json` prints (the parts the tests read).
type Status struct {
	Known   int `json:"servers_known"`
	Conn    int `json:"servers_connected"`
	Servers []struct {
		NodeID    string `json:"node_id"`
		Nickname  string `json:"nickname"`
		Connected bool   `json:"connected"`
	} `json:"servers"`
	Plugins []struct {
		Kind     string `json:"kind"`
		Name     string `json:"name"`
		Pid      int    `json:"pid"`
		Health   string `json:"health"`
		Restarts int    `json:"restarts"`
	} `json:"plugins"`
	GridStats map[string]any `json:"grid_stats"`
}

func (g *Grid) status(t testing.TB, n *Node) (Status, Result) {
	t.Helper()
	r := tarn(t, CLI{Timeout: 40 * time.Second}, "status", "--json", "--node", n.Dir)
	var st Status
	if r.Code == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("tarn status --json: %v\n%s", err, r.Stdout)
		}
	}
	return st, r
}

// waitServers waits until the client node n knows want storage servers.
func (g *Grid) waitServers(t testing.TB, n *Node, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, r := g.status(t, n)
		if r.Code == 0 && st.Known >= want && st.Conn >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s does not see %d storage servers after %v: %+v\n%v", n.Name, want, d, st, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// put uploads r through node n's `tarn put -` and returns the cap.
func (g *Grid) put(t testing.TB, n *Node, r io.Reader) (string, Result) {
	t.Helper()
	res := tarn(t, CLI{Stdin: r, Timeout: 10 * time.Minute}, "put", "--node", n.Dir, "-")
	return strings.TrimSpace(res.Stdout), res
}

// mustPut uploads and fails the test on error.
func (g *Grid) mustPut(t testing.TB, n *Node, r io.Reader) string {
	t.Helper()
	c, res := g.put(t, n, r)
	if res.Code != 0 || !strings.HasPrefix(c, "tarn:") {
		t.Fatalf("put: %v", res)
	}
	return c
}

// get downloads capStr through node n's `tarn get CAP -` into w.
func (g *Grid) get(t testing.TB, n *Node, capStr string, w io.Writer) Result {
	t.Helper()
	return tarn(t, CLI{Stdout: w, Timeout: 10 * time.Minute}, "get", "--node", n.Dir, capStr, "-")
}

// getHash downloads capStr and returns the SHA-256 and length of what came.
func (g *Grid) getHash(t testing.TB, n *Node, capStr string) (string, int64, Result) {
	t.Helper()
	hw := newHashWriter()
	r := g.get(t, n, capStr, hw)
	return hw.Sum(), hw.n, r
}

// shareRe matches a sealed share of the disk backend:
// shares/<ii>/<storage index hex>/<share number>.
var shareRe = regexp.MustCompile(`(^|/)shares/([0-9a-f]{2})/([0-9a-f]{32})/(0|[1-9][0-9]*)$`)

// packRe matches a pack file of the disk backend (small shares packed:
// docs/plugins-storage.md); the backend folder is the one above packs/.
var packRe = regexp.MustCompile(`(^|/)packs/[0-9]{8}\.pack$`)

// Share is one sealed share on a storage node: a file of its own, or
// (Packed) Length bytes at Offset in the pack file Path.
type Share struct {
	Node   *Node
	Path   string
	Index  string // storage index, hex
	Num    string
	Packed bool
	Offset int64 // of the share's bytes in Path; 0 for a share file
	Length int64 // of a packed share
	grid   *Grid
}

// shares lists the sealed shares on n, in files and in packs, of one
// storage index (hex) or of all when index is "".
func (g *Grid) shares(n *Node, index string) []Share {
	var out []Share
	for _, p := range findFiles(n.Dir, func(rel string) bool { return shareRe.MatchString(filepath.ToSlash(rel)) }) {
		m := shareRe.FindStringSubmatch(filepath.ToSlash(p))
		if index == "" || m[3] == index {
			out = append(out, Share{Node: n, Path: p, Index: m[3], Num: m[4], grid: g})
		}
	}
	backends := map[string]bool{}
	for _, p := range findFiles(n.Dir, func(rel string) bool { return packRe.MatchString(filepath.ToSlash(rel)) }) {
		backends[filepath.Dir(filepath.Dir(p))] = true
	}
	for dir := range backends {
		packed, err := storagedisk.PackedShares(dir)
		if err != nil {
			continue // a pack removed meanwhile; the caller looks again
		}
		for _, ps := range packed {
			si := hex.EncodeToString(ps.Ref.Index[:])
			if index == "" || si == index {
				out = append(out, Share{Node: n, Path: ps.Pack, Index: si, Num: fmt.Sprint(ps.Ref.Num),
					Packed: true, Offset: ps.Offset, Length: ps.Length, grid: g})
			}
		}
	}
	return out
}

// packedIn counts the live shares in the pack file at path.
func packedIn(path string) int {
	packed, _ := storagedisk.PackedShares(filepath.Dir(filepath.Dir(path)))
	n := 0
	for _, ps := range packed {
		if ps.Pack == path {
			n++
		}
	}
	return n
}

// allShares lists the sealed shares of every storage node.
func (g *Grid) allShares(index string) []Share {
	var out []Share
	for _, n := range g.Storage() {
		out = append(out, g.shares(n, index)...)
	}
	return out
}

// key names the share uniquely (a pack holds many shares).
func (s Share) key() string {
	if !s.Packed {
		return s.Path
	}
	return fmt.Sprintf("%s@%d", s.Path, s.Offset)
}

// size is the share's length (ok false when its file is gone; a packed
// share's length is the one its listing found).
func (s Share) size() (int64, bool) {
	if s.Packed {
		return s.Length, true
	}
	st, err := os.Stat(s.Path)
	if err != nil {
		return 0, false
	}
	return st.Size(), true
}

// bytes reads the share.
func (s Share) bytes(t testing.TB) []byte {
	t.Helper()
	if !s.Packed {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f, err := os.Open(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, s.Length)
	if _, err := f.ReadAt(b, s.Offset); err != nil {
		t.Fatalf("read packed share %s/%s: %v", s.Index, s.Num, err)
	}
	return b
}

// gone reports whether the share is no longer on its node.
func (s Share) gone() bool {
	if !s.Packed {
		_, err := os.Stat(s.Path)
		return err != nil
	}
	for _, o := range s.grid.shares(s.Node, s.Index) {
		if o.Packed && o.Num == s.Num && o.Path == s.Path && o.Offset == s.Offset {
			return false
		}
	}
	return true
}

// flip inverts count bytes of the share, spread over its middle half (the
// blocks), and returns their offsets in the share; the running backend
// serves them as they now are, as it does a damaged share file.
func (s Share) flip(t testing.TB, count int, rng *rand.Rand) []int64 {
	t.Helper()
	if !s.Packed {
		return flipBytes(t, s.Path, count, rng)
	}
	f, err := os.OpenFile(s.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open pack: %v", err)
	}
	defer f.Close()
	var offs []int64
	for range count {
		off := s.Length/4 + rng.Int64N(max(s.Length/2, 1))
		b := []byte{0}
		if _, err := f.ReadAt(b, s.Offset+off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, s.Offset+off); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	return offs
}

// truncate cuts the share to half its length. A packed share cannot
// change its length under a running backend, so its second half is
// zeroed instead: both read as a torn share.
func (s Share) truncate(t testing.TB) {
	t.Helper()
	if !s.Packed {
		st, err := os.Stat(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(s.Path, st.Size()/2); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(s.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open pack: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, s.Length-s.Length/2), s.Offset+s.Length/2); err != nil {
		t.Fatal(err)
	}
}

// remove deletes the share from its node. A packed share lives in the
// running backend's index, so its node is killed, the share deleted
// through the backend (storagedisk.New and Delete, as its plugin would),
// and the node run again; remove waits until the client sees every
// server again.
func (s Share) remove(t testing.TB) {
	t.Helper()
	if !s.Packed {
		if err := os.Remove(s.Path); err != nil {
			t.Fatal(err)
		}
		return
	}
	g := s.grid
	g.kill(t, s.Node)
	var ref storage.Ref
	if _, err := hex.Decode(ref.Index[:], []byte(s.Index)); err != nil {
		t.Fatal(err)
	}
	var num uint32
	fmt.Sscan(s.Num, &num)
	ref.Num = num
	var d *storagedisk.Disk
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// The killed node's plugin may hold the folder's lock a moment
		// longer.
		if d, err = storagedisk.NewOptions(filepath.Dir(filepath.Dir(s.Path)), storagedisk.Options{NoPack: true}); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("open the backend of %s: %v", s.Node.Name, err)
	}
	err = d.Delete(context.Background(), ref)
	d.Close()
	if err != nil {
		t.Fatalf("delete packed share %s/%s on %s: %v", s.Index, s.Num, s.Node.Name, err)
	}
	g.restart(t, s.Node)
	g.waitServers(t, g.Client, len(g.Storage()), 60*time.Second)
	t.Logf("deleted packed share %s/%s on %s (node stopped and run again)", s.Index, s.Num, s.Node.Name)
}

// indexes is the set of storage indexes (hex) held anywhere in the grid.
func (g *Grid) indexes() map[string]bool {
	m := map[string]bool{}
	for _, s := range g.allShares("") {
		m[s.Index] = true
	}
	return m
}

// kill sends SIGKILL to n and waits until it is gone.
func (g *Grid) kill(t testing.TB, n *Node) {
	t.Helper()
	if err := syscall.Kill(n.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		t.Fatalf("kill -9 %s (pid %d): %v", n.Name, n.Pid, err)
	}
	if left := waitGone([]int{n.Pid}, 10*time.Second); len(left) > 0 {
		t.Fatalf("%s (pid %d) still alive 10s after SIGKILL", n.Name, n.Pid)
	}
	if n.proc != nil {
		n.proc.Wait(5 * time.Second)
	}
}

// signal sends sig to n.
func (g *Grid) signal(t testing.TB, n *Node, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(n.Pid, sig); err != nil {
		t.Fatalf("signal %v to %s (pid %d): %v", sig, n.Name, n.Pid, err)
	}
}

// logText is everything n has logged so far: the harness's own log of the
// process, and any *.log file in its folder or named after it in the grid
// folder (where tarn dev may keep it).
func (g *Grid) logText(n *Node) string {
	seen := map[string]bool{}
	var b strings.Builder
	add := func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		if data, err := os.ReadFile(p); err == nil {
			b.Write(data)
		}
	}
	if n.proc != nil {
		add(n.proc.Log)
	}
	for _, p := range n.logs {
		add(p)
	}
	for _, pat := range []string{
		filepath.Join(n.Dir, "*.log"), filepath.Join(n.Dir, "logs", "*.log"),
		filepath.Join(g.Dir, n.Name+"*.log"), filepath.Join(g.Dir, "logs", n.Name+"*.log"),
	} {
		ms, _ := filepath.Glob(pat)
		for _, m := range ms {
			add(m)
		}
	}
	return b.String()
}

// dumpLogs prints the tail of every node's log (on failure).
func (g *Grid) dumpLogs(t testing.TB) {
	if g.dev != nil {
		b, _ := os.ReadFile(g.dev.Log)
		t.Logf("---- tarn dev log:\n%s", tail(string(b), 3000))
	}
	for _, n := range g.Nodes {
		t.Logf("---- %s (%s, pid %d) log:\n%s", n.Name, n.Role, n.Pid, tail(g.logText(n), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// pluginKindName reads KIND and NAME from `tarn plugin serve KIND NAME`.
func pluginKindName(p procInfo) (kind, name string, ok bool) {
	for i := 0; i+3 < len(p.Cmdline); i++ {
		if p.Cmdline[i] == "plugin" && p.Cmdline[i+1] == "serve" {
			return p.Cmdline[i+2], p.Cmdline[i+3], true
		}
	}
	return "", "", false
}

// teeReader is io.TeeReader into a hashWriter.
func teeReader(r io.Reader, w *hashWriter) io.Reader { return io.TeeReader(r, w) }
