//go:build acceptance

package acceptance

// Check, verify and repair against shares damaged on disk: bytes flipped,
// a share truncated, a share deleted, a directory's slot share deleted.
// `tarn check --verify` and `tarn deep-check --verify` must name each
// damaged share and its server, --repair must fix all of it, and a later
// verify must be clean; every file reads back by SHA-256.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
)

// What `tarn check --json` and `tarn deep-check --json` print (the
// fields the tests read; docs/repair.md), decoded here without the
// checker package so the suite stays a black box.
type checkReport struct {
	Path            string        `json:"path"`
	Kind            string        `json:"kind"`
	Cap             string        `json:"verify_cap"`
	StorageIndex    string        `json:"storage_index"`
	Needed          int           `json:"shares_needed"`
	Total           int           `json:"shares_total"`
	Found           int           `json:"shares_found"`
	Good            int           `json:"shares_good"`
	Missing         []int         `json:"shares_missing"`
	Corrupt         []shareReport `json:"shares_corrupt"`
	Shares          []shareReport `json:"shares"`
	Servers         int           `json:"servers"`
	Happiness       int           `json:"happiness"`
	HappinessWanted int           `json:"happiness_wanted"`
	Unreachable     []string      `json:"servers_unreachable"`
	Verified        bool          `json:"verified"`
	LeasesRenewed   int           `json:"leases_renewed"`
	Problems        []string      `json:"problems"`
	Repair          *repairReport `json:"repair"`
	Outcome         string        `json:"outcome"`
}

type shareReport struct {
	Share   int    `json:"share"`
	Server  string `json:"server"`
	State   string `json:"state"`
	Problem string `json:"problem"`
	Removed bool   `json:"removed_by_server"`
}

type repairReport struct {
	Rebuilt        []int         `json:"rebuilt"`
	Copied         []int         `json:"copied"`
	Placed         []shareReport `json:"placed"`
	Errors         []string      `json:"errors"`
	HappinessAfter int           `json:"happiness_after"`
	GoodAfter      int           `json:"good_after"`
}

type checkSummary struct {
	Objects       int `json:"objects"`
	Files         int `json:"files"`
	Directories   int `json:"directories"`
	Healthy       int `json:"healthy"`
	Unhealthy     int `json:"unhealthy"`
	Repaired      int `json:"repaired"`
	Unrecoverable int `json:"unrecoverable"`
	Errors        int `json:"errors"`
}

// Outcomes of a check.
const (
	outHealthy       = "healthy"
	outUnhealthy     = "unhealthy"
	outRepaired      = "repaired"
	outUnrecoverable = "unrecoverable"
)

// reportIndex is the hex storage index (as the disk backend names its
// folders) of what a check report is about, read from its verify cap.
func reportIndex(t testing.TB, r *checkReport) string {
	t.Helper()
	c, err := cap.Parse(r.Cap)
	if err != nil {
		t.Fatalf("parse the report's cap %q: %v", r.Cap, err)
	}
	var si cap.StorageIndex
	switch v := c.(type) {
	case cap.CHKVerify:
		si = v.StorageIndex
	case interface{ StorageIndex() cap.StorageIndex }:
		si = v.StorageIndex()
	default:
		t.Fatalf("report cap %q (%s) has no storage index", r.Cap, c.Kind())
	}
	return hex.EncodeToString(si[:])
}

// nodeID is the node id a running node wrote into its node.json (the
// server name check reports use).
func nodeID(t testing.TB, n *Node) string {
	t.Helper()
	var info NodeInfo
	b, err := os.ReadFile(filepath.Join(n.Dir, "node.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil || info.NodeID == "" {
		t.Fatalf("node id of %s: %v", n.Name, err)
	}
	return info.NodeID
}

// checkJSON runs `tarn check --json ARGS... CAP` through the client and
// decodes its single report.
func (g *Grid) checkJSON(t testing.TB, n *Node, args ...string) (*checkReport, Result) {
	t.Helper()
	r := tarn(t, CLI{Timeout: 3 * time.Minute}, append([]string{"check", "--json", "--node", n.Dir}, args...)...)
	var rep checkReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("tarn check --json: %v\n%v", err, r)
	}
	return &rep, r
}

// deepJSON runs `tarn deep-check --json ARGS...` and decodes its lines.
func (g *Grid) deepJSON(t testing.TB, n *Node, args ...string) ([]*checkReport, *checkSummary, Result) {
	t.Helper()
	r := tarn(t, CLI{Timeout: 5 * time.Minute}, append([]string{"deep-check", "--json", "--node", n.Dir}, args...)...)
	var reps []*checkReport
	var sum *checkSummary
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l struct {
			Report  *checkReport  `json:"report"`
			Summary *checkSummary `json:"summary"`
			Error   string        `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("deep-check --json line %q: %v\n%v", sc.Text(), err, r)
		}
		if l.Error != "" {
			t.Fatalf("deep-check --json error line: %s", l.Error)
		}
		if l.Report != nil {
			reps = append(reps, l.Report)
		}
		if l.Summary != nil {
			sum = l.Summary
		}
	}
	if sum == nil {
		t.Fatalf("deep-check --json printed no summary: %v", r)
	}
	return reps, sum, r
}

// damage is one share damaged on disk.
type damage struct {
	How    string // "flip", "truncate", "delete"
	Share  Share
	Server string // node id of the share's server
}

// apply damages the share file as d.How says.
func (d damage) apply(t testing.TB, rng *rand.Rand) {
	t.Helper()
	switch d.How {
	case "flip":
		d.Share.flip(t, 8, rng)
	case "truncate":
		d.Share.truncate(t)
	case "delete":
		d.Share.remove(t)
	default:
		t.Fatalf("unknown damage %q", d.How)
	}
	t.Logf("%s share %s of %s on %s", d.How, d.Share.Num, d.Share.Index, d.Share.Node.Name)
}

// named checks that a verify report names d: a flipped or truncated share
// is listed corrupt (or unreadable) with its server, and every damaged
// share number is missing (no good copy anywhere).
func (d damage) named(t testing.TB, r *checkReport) {
	t.Helper()
	num, _ := strconv.Atoi(d.Share.Num)
	if !slices.Contains(r.Missing, num) {
		t.Errorf("%s share %d on %s: not in shares_missing %v", d.How, num, d.Share.Node.Name, r.Missing)
	}
	var found *shareReport
	for i, c := range r.Corrupt {
		if c.Share == num && c.Server == d.Server {
			found = &r.Corrupt[i]
		}
	}
	switch d.How {
	case "delete":
		if found != nil {
			t.Errorf("deleted share %d on %s reported %s, want only missing", num, d.Share.Node.Name, found.State)
		}
		for _, s := range r.Shares {
			if s.Share == num && s.Server == d.Server {
				t.Errorf("deleted share %d on %s is still listed: %+v", num, d.Share.Node.Name, s)
			}
		}
	default:
		if found == nil {
			t.Errorf("%s share %d on %s (%s) is not named among the corrupt shares %+v", d.How, num, d.Share.Node.Name, d.Server, r.Corrupt)
			return
		}
		if found.State != "corrupt" {
			t.Errorf("%s share %d on %s is %q (%s), want %q", d.How, num, d.Share.Node.Name, found.State, found.Problem, "corrupt")
		}
		t.Logf("%s share %d on %s: %s: %s (removed by server: %v)", d.How, num, d.Share.Node.Name, found.State, found.Problem, found.Removed)
	}
}

// clean checks that a verify report after a repair is healthy with no
// damaged share left.
func clean(t testing.TB, what string, r *checkReport) {
	t.Helper()
	if r.Outcome != outHealthy || len(r.Missing) > 0 || len(r.Corrupt) > 0 || r.Good != r.Total || r.Happiness < r.HappinessWanted {
		b, _ := json.Marshal(r)
		t.Errorf("%s after repair: not clean: %s", what, b)
	}
}

// repairGrid is a grid where a file survives three damaged shares: six
// storage nodes and shares 3-of-6 (H=4).
func repairGrid(t *testing.T) *Grid {
	return startGrid(t, GridOptions{Manual: true, StorageNodes: 6, ServerTimeout: "5s", Edit: func(p string) string {
		return setTOML(p, "client.shares", "n", "6")
	}})
}

// TestVerifyRepair flips bytes in one share of a file, truncates a second
// and deletes a third, each on another server: `tarn check --verify`
// names each (share, server, corrupt or missing), `tarn check --repair`
// repairs the file, a later verify is clean, and the file reads back.
func TestVerifyRepair(t *testing.T) {
	g := repairGrid(t)
	ids := map[*Node]string{}
	for _, n := range g.Storage() {
		ids[n] = nodeID(t, n)
	}
	seg := segmentSize(t, g.Client)
	size := 3*seg + 777
	want := genHash(1700, size)
	c := g.mustPut(t, g.Client, newGen(1700, size))
	si := storageIndex(t, c)
	shares := g.allShares(si)
	if len(shares) != 6 {
		t.Fatalf("%d shares of %s, want 6", len(shares), si)
	}
	rng := rand.New(rand.NewPCG(17, 1))
	var dmg []damage
	for i, how := range []string{"flip", "truncate", "delete"} {
		d := damage{How: how, Share: shares[i], Server: ids[shares[i].Node]}
		d.apply(t, rng)
		dmg = append(dmg, d)
	}

	t.Run("check without verify lists the deleted share only", func(t *testing.T) {
		r, res := g.checkJSON(t, g.Client, c)
		if res.Code == 0 || r.Outcome != outUnhealthy {
			t.Errorf("check: exit %d, outcome %s; want exit 1 and unhealthy", res.Code, r.Outcome)
		}
		if r.Found != 5 || r.Verified {
			t.Errorf("check: %d share numbers found (verified %v), want 5 listed", r.Found, r.Verified)
		}
	})

	t.Run("verify names each damaged share", func(t *testing.T) {
		start := time.Now()
		r, res := g.checkJSON(t, g.Client, "--verify", c)
		figure(t, "check --verify of a %d KiB file with 3 of 6 shares damaged: %v", size>>10, time.Since(start).Round(time.Millisecond))
		if res.Code != 1 {
			t.Errorf("check --verify of a damaged file: exit %d, want 1: %v", res.Code, res)
		}
		if r.Outcome != outUnhealthy || r.Good != 3 || !r.Verified {
			t.Errorf("check --verify: outcome %s, %d good (verified %v); want unhealthy, 3 good", r.Outcome, r.Good, r.Verified)
		}
		for _, d := range dmg {
			d.named(t, r)
		}
		// The server told of a corrupt share logs the advisory, checks
		// the share itself and removes it.
		for _, d := range dmg[:2] {
			if !d.Share.gone() {
				t.Errorf("%s share %s on %s is still on disk after the corruption advisory", d.How, d.Share.Num, d.Share.Node.Name)
			}
			log := g.logText(d.Share.Node)
			for _, want := range []string{"corruption reported", "removed a corrupt share"} {
				if !strings.Contains(log, want) || !strings.Contains(log, d.Share.Index+"/"+d.Share.Num) {
					t.Errorf("%s's log has no %q line for share %s/%s", d.Share.Node.Name, want, d.Share.Index, d.Share.Num)
				}
			}
			if st := tarn(t, CLI{}, "status", "--node", d.Share.Node.Dir); st.Code == 0 {
				if !regexp.MustCompile(`\b1 corruption advisories \(1 removed\)`).MatchString(st.Stdout) {
					t.Errorf("status of %s does not count the advisory and the removal:\n%s", d.Share.Node.Name, st.Stdout)
				}
			} else {
				t.Logf("status of storage node %s: %s", d.Share.Node.Name, lastLine(st.Stderr))
			}
		}
	})

	t.Run("the human form names the corrupt share and its server", func(t *testing.T) {
		c2 := g.mustPut(t, g.Client, newGen(1701, seg+3))
		s := g.allShares(storageIndex(t, c2))[4]
		d := damage{How: "flip", Share: s, Server: ids[s.Node]}
		d.apply(t, rng)
		h := tarn(t, CLI{Timeout: 3 * time.Minute}, "check", "--verify", "--node", g.Client.Dir, c2)
		re := regexp.MustCompile(`corrupt: share ` + s.Num + ` on ` + regexp.QuoteMeta(d.Server) + `: .*\(removed by its server\)`)
		if h.Code != 1 || !re.MatchString(h.Stdout) || !strings.Contains(h.Stdout, "missing: "+s.Num) {
			t.Errorf("tarn check --verify: want exit 1, %q and missing: %s: %v", re, s.Num, h)
		}
		t.Logf("\n%s", h.Stdout)
		h = tarn(t, CLI{Timeout: 3 * time.Minute}, "check", "--repair", "--node", g.Client.Dir, c2)
		if h.Code != 0 || !strings.Contains(h.Stdout, ": repaired") || !strings.Contains(h.Stdout, "repair: rebuilt shares "+s.Num) {
			t.Errorf("tarn check --repair: want exit 0, repaired, rebuilt shares %s: %v", s.Num, h)
		}
		t.Logf("\n%s", h.Stdout)
	})

	t.Run("repair fixes all, a later verify is clean", func(t *testing.T) {
		start := time.Now()
		r, res := g.checkJSON(t, g.Client, "--repair", c)
		took := time.Since(start)
		if res.Code != 0 || r.Outcome != outRepaired || r.Repair == nil {
			t.Fatalf("check --repair: exit %d outcome %s: %v", res.Code, r.Outcome, res)
		}
		if len(r.Repair.Errors) > 0 || r.Repair.GoodAfter != 6 || r.Repair.HappinessAfter < 4 {
			t.Errorf("repair: %+v; want no errors, 6 good, happiness >= 4", *r.Repair)
		}
		figure(t, "check --repair of a %d KiB file, 3 of 6 shares rebuilt: %v", size>>10, took.Round(time.Millisecond))
		r, res = g.checkJSON(t, g.Client, "--verify", c)
		if res.Code != 0 {
			t.Errorf("check --verify after repair: exit %d", res.Code)
		}
		clean(t, "check --verify", r)
		sum, n, gr := g.getHash(t, g.Client, c)
		if gr.Code != 0 || n != size || sum != want {
			t.Fatalf("get after repair: %d bytes %s, want %d %s: %v", n, sum, size, want, gr)
		}
	})

	t.Run("no damaged share file left on disk", func(t *testing.T) {
		sizes := map[int64]int{}
		nums := map[string]bool{}
		for _, s := range g.allShares(si) {
			size, ok := s.size()
			if !ok {
				t.Fatalf("share %s/%s on %s vanished", s.Index, s.Num, s.Node.Name)
			}
			sizes[size]++
			nums[s.Num] = true
		}
		if len(sizes) != 1 || len(nums) != 6 {
			t.Errorf("after repair the shares on disk have sizes %v and numbers %v; want one size, 6 numbers", sizes, nums)
		}
	})
}

// TestDeepCheckRepair damages a tree: bytes flipped in a share of one
// file, a share of a second truncated, one of a third deleted, and a slot
// share of a directory deleted. `tarn deep-check --verify` prints a line
// per object and a summary naming them unhealthy, --repair repairs them
// all, a later verify finds every object healthy, and every file reads
// back.
func TestDeepCheckRepair(t *testing.T) {
	g := startGrid(t, GridOptions{})
	ids := map[string]*Node{}
	for _, n := range g.Storage() {
		ids[nodeID(t, n)] = n
	}
	cl := g.Client.Dir
	mustTarn(t, CLI{}, "create-alias", "--node", cl, "tree")
	mustTarn(t, CLI{}, "mkdir", "--node", cl, "-p", "tree:a/b")
	seg := segmentSize(t, g.Client)
	files := []struct {
		path string
		seed uint64
		size int64
		how  string // damage to one of its shares; "" none
	}{
		{"a/flipped.bin", 1800, 2*seg + 11, "flip"},
		{"a/b/truncated.bin", 1801, seg + 5, "truncate"},
		{"deleted.bin", 1802, 100000, "delete"},
		{"a/b/intact.bin", 1803, 70000, ""},
		{"lit.txt", 1804, 20, ""},
	}
	tmp := t.TempDir()
	for _, f := range files {
		p := filepath.Join(tmp, fmt.Sprint(f.seed))
		if err := os.WriteFile(p, genBytes(f.seed, f.size), 0o644); err != nil {
			t.Fatal(err)
		}
		mustTarn(t, CLI{}, "put", "--node", cl, p, "tree:"+f.path)
	}
	rng := rand.New(rand.NewPCG(18, 1))
	damaged := map[string]damage{} // path -> damage
	for i, f := range files {
		if f.how == "" {
			continue
		}
		r, _ := g.checkJSON(t, g.Client, "tree:"+f.path)
		sh := g.allShares(reportIndex(t, r))
		if len(sh) != 5 {
			t.Fatalf("%s: %d shares on disk, want 5", f.path, len(sh))
		}
		s := sh[i%len(sh)]
		d := damage{How: f.how, Share: s, Server: nodeID(t, s.Node)}
		d.apply(t, rng)
		damaged["/"+f.path] = d
	}
	// A directory's slot share: delete a/b's on one server.
	r, _ := g.checkJSON(t, g.Client, "tree:a/b")
	if r.Kind != "dir" {
		t.Fatalf("check of tree:a/b: kind %q, want dir", r.Kind)
	}
	dirIndex := reportIndex(t, r)
	slotRe := regexp.MustCompile(`(^|/)slots/[0-9a-f]{2}/` + dirIndex + `/[0-9]+$`)
	var slots []string
	for _, n := range g.Storage() {
		slots = append(slots, findFiles(n.Dir, func(rel string) bool { return slotRe.MatchString(filepath.ToSlash(rel)) })...)
	}
	if len(slots) == 0 {
		t.Fatalf("no slot share of directory a/b (%s) on disk", dirIndex)
	}
	if err := os.Remove(slots[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted slot share %s of directory a/b", slots[0])
	const objects, dirs = 8, 3 // /, a, a/b and five files

	t.Run("verify: a line per object, a summary, each damage named", func(t *testing.T) {
		// JSON first: the servers remove the corrupt shares they are told
		// of, so a second verify sees them missing.
		start := time.Now()
		reps, sum, res := g.deepJSON(t, g.Client, "--verify", "tree:")
		figure(t, "deep-check --verify of %d objects, 4 damaged: %v", objects, time.Since(start).Round(time.Millisecond))
		if res.Code != 1 {
			t.Errorf("deep-check --verify --json of a damaged tree: exit %d, want 1", res.Code)
		}
		if sum.Objects != objects || sum.Unhealthy != 4 {
			t.Errorf("deep-check --json summary %+v, want %d objects, 4 unhealthy", *sum, objects)
		}
		for _, rp := range reps {
			if d, ok := damaged[rp.Path]; ok {
				if rp.Outcome != outUnhealthy {
					t.Errorf("%s: outcome %s, want unhealthy", rp.Path, rp.Outcome)
				}
				d.named(t, rp)
				continue
			}
			want := outHealthy
			if rp.Path == "/a/b" {
				want = outUnhealthy
				if rp.Good != rp.Total-1 || len(rp.Missing) != 1 {
					t.Errorf("directory a/b with a slot share deleted: %d of %d good, missing %v", rp.Good, rp.Total, rp.Missing)
				}
			}
			if rp.Outcome != want {
				t.Errorf("%s: outcome %s, want %s", rp.Path, rp.Outcome, want)
			}
		}

		h := tarn(t, CLI{Timeout: 5 * time.Minute}, "deep-check", "--verify", "--node", cl, "tree:")
		if h.Code != 1 {
			t.Errorf("deep-check --verify of a damaged tree: exit %d, want 1: %v", h.Code, h)
		}
		lines := strings.Split(strings.TrimSpace(h.Stdout), "\n")
		var perObject int
		for _, l := range lines {
			if regexp.MustCompile(`^(healthy|unhealthy|repaired|unrecoverable)\s+tree:`).MatchString(l) {
				perObject++
			}
		}
		if perObject != objects {
			t.Errorf("deep-check printed %d object lines, want %d:\n%s", perObject, objects, h.Stdout)
		}
		wantSum := fmt.Sprintf("%d objects (%d directories, %d files): %d healthy, 4 unhealthy, 0 repaired, 0 unrecoverable", objects, dirs, objects-dirs, objects-4)
		if !strings.Contains(h.Stdout, wantSum) {
			t.Errorf("deep-check summary is not %q:\n%s", wantSum, h.Stdout)
		}
		t.Logf("\n%s", h.Stdout)

	})

	t.Run("repair fixes all, a later verify is clean", func(t *testing.T) {
		start := time.Now()
		h := tarn(t, CLI{Timeout: 5 * time.Minute}, "deep-check", "--repair", "--node", cl, "tree:")
		figure(t, "deep-check --repair of %d objects, 4 repaired: %v", objects, time.Since(start).Round(time.Millisecond))
		wantSum := fmt.Sprintf("%d objects (%d directories, %d files): %d healthy, 0 unhealthy, 4 repaired, 0 unrecoverable", objects, dirs, objects-dirs, objects-4)
		if h.Code != 0 || !strings.Contains(h.Stdout, wantSum) {
			t.Errorf("deep-check --repair: want exit 0 and %q: %v", wantSum, h)
		}
		t.Logf("\n%s", h.Stdout)
		reps, sum, res := g.deepJSON(t, g.Client, "--verify", "tree:")
		if res.Code != 0 || sum.Healthy != objects {
			t.Errorf("deep-check --verify after repair: exit %d, summary %+v", res.Code, *sum)
		}
		for _, rp := range reps {
			clean(t, rp.Path, rp)
		}
		for _, f := range files {
			var out bytes.Buffer
			r := tarn(t, CLI{Stdout: &out}, "cat", "--node", cl, "tree:"+f.path)
			if r.Code != 0 || !bytes.Equal(out.Bytes(), genBytes(f.seed, f.size)) {
				t.Errorf("tarn cat tree:%s after repair: %d bytes: %v", f.path, out.Len(), r)
			}
		}
	})
}

// TestLeaseGC runs storage nodes with garbage collection on, a lease of 6
// seconds and a crawler pass every second: a file whose lease nobody
// renews loses its shares on every server, while a file in an alias kept
// renewed by `tarn deep-check --add-lease` survives and reads back.
func TestLeaseGC(t *testing.T) {
	const lease = 6 * time.Second
	g := startGrid(t, GridOptions{Manual: true, StorageEdit: func(_ int, p string) string {
		p = setTOML(p, "storage", "gc", "true")
		p = setTOML(p, "storage", "lease_duration", fmt.Sprintf("%q", lease.String()))
		return setTOML(p, "storage", "gc_interval", `"1s"`)
	}})
	cl := g.Client.Dir
	mustTarn(t, CLI{}, "create-alias", "--node", cl, "keep")
	kept := filepath.Join(t.TempDir(), "kept.bin")
	if err := os.WriteFile(kept, genBytes(1900, 200000), 0o644); err != nil {
		t.Fatal(err)
	}
	mustTarn(t, CLI{}, "put", "--node", cl, kept, "keep:kept.bin")
	start := time.Now() // before the lease is granted
	orphan := g.mustPut(t, g.Client, newGen(1901, 200000))
	r, _ := g.checkJSON(t, g.Client, "keep:kept.bin")
	keptIndex := reportIndex(t, r)
	orphanIndex := storageIndex(t, orphan)
	if n := len(g.allShares(orphanIndex)); n != 5 {
		t.Fatalf("%d shares of the unrenewed file, want 5", n)
	}

	renewals := 0
	for len(g.allShares(orphanIndex)) > 0 {
		if time.Since(start) > 4*lease {
			t.Fatalf("shares of a file whose lease expired %v ago are still on disk: %d", time.Since(start)-lease, len(g.allShares(orphanIndex)))
		}
		h := tarn(t, CLI{Timeout: time.Minute}, "deep-check", "--add-lease", "--node", cl)
		if h.Code != 0 || !regexp.MustCompile(`kept\.bin.*\b5 leases renewed`).MatchString(h.Stdout) {
			t.Fatalf("deep-check --add-lease: want exit 0 and kept.bin with 5 leases renewed: %v", h)
		}
		renewals++
		time.Sleep(lease / 4)
	}
	gone := time.Since(start)
	figure(t, "shares of an unrenewed file removed by GC %v after upload (lease %v, gc_interval 1s); the renewed one kept over %d renewals", gone.Round(100*time.Millisecond), lease, renewals)
	if gone < lease {
		t.Errorf("shares removed %v after upload, before the %v lease expired", gone, lease)
	}
	removedLogged := 0
	for _, n := range g.Storage() {
		if strings.Contains(g.logText(n), "removed shares whose leases all expired") {
			removedLogged++
		}
	}
	if removedLogged != 5 {
		t.Errorf("%d storage nodes logged a GC removal, want 5", removedLogged)
	}

	// Renew once more so the assertions below do not race the crawler.
	mustTarn(t, CLI{Timeout: time.Minute}, "deep-check", "--add-lease", "--node", cl)
	if n := len(g.allShares(keptIndex)); n != 5 {
		t.Errorf("the renewed file has %d shares left, want 5", n)
	}
	var out bytes.Buffer
	if res := tarn(t, CLI{Stdout: &out}, "cat", "--node", cl, "keep:kept.bin"); res.Code != 0 || !bytes.Equal(out.Bytes(), genBytes(1900, 200000)) {
		t.Errorf("the renewed file after GC: %d bytes: %v", out.Len(), res)
	}
	r, res := g.checkJSON(t, g.Client, orphan)
	if res.Code != 1 || r.Outcome != outUnrecoverable || r.Found != 0 {
		t.Errorf("check of the collected file: exit %d, outcome %s, %d found; want 1, unrecoverable, 0", res.Code, r.Outcome, r.Found)
	}
	if gr := g.get(t, g.Client, orphan, &bytes.Buffer{}); gr.Code == 0 {
		t.Errorf("get of the collected file succeeded")
	}
}
