//go:build acceptance

package acceptance

// Storage and grid resilience (issue 7, sections 4 and 5): kill -9 and
// SIGSTOP of storage nodes during uploads, kill -9 of plugin processes
// during a 200 MiB upload, the introducer down, the whole grid killed at
// once, a directory under concurrent writers while servers fail, a full
// disk, and hung connections. Whatever a command reported as stored must
// read back byte for byte (SHA-256) afterwards.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
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
)

// stored is a file a command reported as stored.
type stored struct {
	Cap  string
	Seed uint64
	Size int64
}

// ledger records what was acknowledged, safe for concurrent writers.
type ledger struct {
	mu    sync.Mutex
	files []stored
}

func (l *ledger) add(s stored) {
	l.mu.Lock()
	l.files = append(l.files, s)
	l.mu.Unlock()
}

func (l *ledger) all() []stored {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stored(nil), l.files...)
}

// verifyAll reads back every acknowledged file by SHA-256 through n.
func (g *Grid) verifyAll(t testing.TB, n *Node, files []stored) {
	t.Helper()
	for _, f := range files {
		sum, size, r := g.getHash(t, n, f.Cap)
		if r.Code != 0 || size != f.Size || sum != genHash(f.Seed, f.Size) {
			t.Errorf("acknowledged file %s (seed %d, %d bytes) reads back as %d bytes %s: %v", f.Cap, f.Seed, f.Size, size, sum, r)
		}
	}
}

// oneLineError checks that a failed command said why in one short line,
// without a panic.
func oneLineError(t testing.TB, what string, r Result) {
	t.Helper()
	msg := strings.TrimSpace(r.Stderr)
	if msg == "" || r.Code == -1 {
		t.Errorf("%s failed without an error message (exit %d, %v)", what, r.Code, r.Err)
	}
	if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
		t.Errorf("%s panicked:\n%s", what, msg)
	}
	if strings.Count(msg, "\n") > 1 {
		t.Errorf("%s: error is %d lines, want one:\n%s", what, strings.Count(msg, "\n")+1, msg)
	}
}

// tmpFiles lists the files a storage backend folder has in tmp/ (shares
// being written).
func tmpFiles(root string) []string {
	return findFiles(root, func(rel string) bool { return strings.Contains(filepath.ToSlash(rel), "tmp/") })
}

// tornShares reports share files of one storage index whose size differs
// from their siblings' (a share sealed half-written).
func tornShares(t testing.TB, shares []Share) map[string]map[int64]int {
	t.Helper()
	sizes := map[string]map[int64]int{}
	for _, s := range shares {
		size, ok := s.size()
		if !ok {
			continue // removed meanwhile
		}
		if sizes[s.Index] == nil {
			sizes[s.Index] = map[int64]int{}
		}
		sizes[s.Index][size]++
	}
	for si, m := range sizes {
		if len(m) == 1 {
			delete(sizes, si)
		}
	}
	return sizes
}

// TestKillAndStopDuringUpload kills -9 a storage node that is receiving a
// share and freezes (SIGSTOP) a second one during a 48 MiB upload, on six
// storage nodes: the upload completes on the others or fails with a clear
// one-line error; uploads with the faults still in place succeed; and
// every file reported stored reads back byte-identical, with the faults
// in place, after SIGCONT, and after the killed node runs again (no torn
// share on it).
func TestKillAndStopDuringUpload(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, StorageNodes: 6, ServerTimeout: "3s"})
	var acked ledger
	seg := segmentSize(t, g.Client)
	for i, size := range []int64{100000, 2*seg + 17, 8 << 20} {
		seed := uint64(2000 + i)
		acked.add(stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size})
	}

	const size = 48 << 20
	stop := make(chan struct{})
	var killed, frozen *Node
	faulted := make(chan struct{})
	go func() {
		defer close(faulted)
		killed = writingNode(g, stop)
		if killed == nil {
			return
		}
		syscall.Kill(killed.Pid, syscall.SIGKILL)
		// Freeze another node, one that is writing too when possible.
		deadline := time.Now().Add(2 * time.Second)
		for frozen == nil && time.Now().Before(deadline) {
			for _, n := range g.Storage() {
				if n != killed && alive(n.Pid) && len(tmpFiles(n.Dir)) > 0 {
					frozen = n
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if frozen == nil {
			for _, n := range g.Storage() {
				if n != killed {
					frozen = n
					break
				}
			}
		}
		syscallStop(frozen.Pid)
	}()
	start := time.Now()
	c, r := g.put(t, g.Client, newGen(2100, size))
	took := time.Since(start)
	close(stop)
	<-faulted
	if frozen != nil {
		t.Cleanup(func() { syscallCont(frozen.Pid) })
	}
	if killed == nil || frozen == nil {
		t.Fatalf("no storage node was seen writing a share: nothing injected (put: %v)", r)
	}
	g.kill(t, killed)
	if r.Code == 0 {
		acked.add(stored{c, 2100, size})
		figure(t, "%d MiB upload with %s killed -9 and %s stopped mid-upload: completed in %v (server_timeout 3s)", size>>20, killed.Name, frozen.Name, took.Round(time.Millisecond))
	} else {
		oneLineError(t, "the upload in flight", r)
		figure(t, "%d MiB upload with %s killed -9 and %s stopped mid-upload: failed in %v: %s", size>>20, killed.Name, frozen.Name, took.Round(time.Millisecond), lastLine(r.Stderr))
	}

	t.Run("uploads with one node dead and one frozen", func(t *testing.T) {
		for i, sz := range []int64{300000, 4 << 20} {
			seed := uint64(2200 + i)
			start := time.Now()
			c, r := g.put(t, g.Client, newGen(seed, sz))
			if r.Code != 0 {
				t.Errorf("put of %d bytes with 4 of 6 servers usable (H=4): %v", sz, r)
				continue
			}
			t.Logf("put of %d bytes with %s dead and %s frozen: %v", sz, killed.Name, frozen.Name, time.Since(start).Round(time.Millisecond))
			acked.add(stored{c, seed, sz})
		}
	})
	t.Run("everything acknowledged reads back with the faults in place", func(t *testing.T) {
		g.verifyAll(t, g.Client, acked.all())
	})
	t.Run("after SIGCONT and a restart of the killed node", func(t *testing.T) {
		syscallCont(frozen.Pid)
		g.restart(t, killed)
		g.waitServers(t, g.Client, 6, 60*time.Second)
		if tmp := tmpFiles(killed.Dir); len(tmp) > 0 {
			t.Errorf("%s has files left in tmp/ after its restart: %v", killed.Name, tmp)
		}
		if torn := tornShares(t, g.allShares("")); len(torn) > 0 {
			t.Errorf("share files of different sizes within one file (torn shares): %v", torn)
		}
		g.verifyAll(t, g.Client, acked.all())
		for _, f := range acked.all() {
			rep, res := g.checkJSON(t, g.Client, "--verify", f.Cap)
			if rep.Outcome == "unrecoverable" || len(rep.Corrupt) > 0 {
				t.Errorf("check --verify %s: %s, corrupt %v: %v", f.Cap, rep.Outcome, rep.Corrupt, res)
			}
		}
	})
}

// TestKillAndStopDuringUploadShort is the same fault on five storage
// nodes (H=4): with one node dead and one frozen only three are usable,
// so the upload must fail, in one line naming the servers, within a bound
// set by the server timeout; every file stored before reads back, and
// after SIGCONT and a restart uploads work again.
func TestKillAndStopDuringUploadShort(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "3s"})
	var acked ledger
	for i, size := range []int64{90000, 6 << 20} {
		seed := uint64(2150 + i)
		acked.add(stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size})
	}
	stop := make(chan struct{})
	var killed, frozen *Node
	faulted := make(chan struct{})
	go func() {
		defer close(faulted)
		if killed = writingNode(g, stop); killed == nil {
			return
		}
		syscall.Kill(killed.Pid, syscall.SIGKILL)
		for _, n := range g.Storage() {
			if n != killed {
				frozen = n
				syscallStop(n.Pid)
				return
			}
		}
	}()
	start := time.Now()
	_, r := g.put(t, g.Client, newGen(2160, 48<<20))
	took := time.Since(start)
	close(stop)
	<-faulted
	if frozen != nil {
		t.Cleanup(func() { syscallCont(frozen.Pid) })
	}
	if killed == nil || frozen == nil {
		t.Fatalf("no storage node was seen writing a share: nothing injected (put: %v)", r)
	}
	g.kill(t, killed)
	if r.Code == 0 {
		t.Fatalf("a 48 MiB upload succeeded with 3 of 5 servers usable and H=4")
	}
	oneLineError(t, "the upload in flight", r)
	line := lastLine(r.Stderr)
	if !strings.Contains(line, "happiness") || !regexp.MustCompile(`\b3 usable\b`).MatchString(line) {
		t.Errorf("the error does not say that too few servers were usable for happiness:\n%s", line)
	}
	figure(t, "48 MiB upload on 5 nodes with %s killed -9 and %s stopped: failed in %v: %s", killed.Name, frozen.Name, took.Round(time.Millisecond), line)
	if took > 60*time.Second {
		t.Errorf("the failing upload took %v", took)
	}
	g.verifyAll(t, g.Client, acked.all())
	syscallCont(frozen.Pid)
	g.restart(t, killed)
	g.waitServers(t, g.Client, 5, 60*time.Second)
	acked.add(stored{g.mustPut(t, g.Client, newGen(2161, 2<<20)), 2161, 2 << 20})
	g.verifyAll(t, g.Client, acked.all())
	if tmp := tmpFiles(killed.Dir); len(tmp) > 0 {
		t.Errorf("%s has files left in tmp/ after its restart: %v", killed.Name, tmp)
	}
	if torn := tornShares(t, g.allShares("")); len(torn) > 0 {
		t.Errorf("torn shares: %v", torn)
	}
}

// TestPluginKillBigUpload kills -9 the storage plugin of a storage node
// and then the client's codec plugin during one 200 MiB upload, and the
// storage plugin alone during a second: the first succeeds or fails in
// one clear line, the second succeeds (another server takes the share);
// the host starts the plugins again; files stored before are unharmed.
func TestPluginKillBigUpload(t *testing.T) {
	g := startGrid(t, GridOptions{})
	var acked ledger
	for i, size := range []int64{70000, 5 << 20} {
		seed := uint64(2300 + i)
		acked.add(stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size})
	}
	const size = 200 << 20
	// upload runs a 200 MiB put and kills each plugin once the client has
	// sent at[i] bytes of shares.
	upload := func(t *testing.T, seed uint64, kills []plugin, owners []*Node, at []float64) (string, Result) {
		type res struct {
			c string
			r Result
		}
		done := make(chan res, 1)
		base := bytesUploaded(t, g)
		start := time.Now()
		go func() {
			c, r := g.put(t, g.Client, newGen(seed, size))
			done <- res{c, r}
		}()
		for i, p := range kills {
			for {
				if up := bytesUploaded(t, g); up-base >= at[i] {
					break
				}
				select {
				case r := <-done:
					t.Fatalf("the upload ended before %s %s could be killed: %v", p.Kind, p.Name, r.r)
				case <-time.After(50 * time.Millisecond):
				}
			}
			if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %s %s of %s (pid %d): %v", p.Kind, p.Name, owners[i].Name, p.Pid, err)
			}
			t.Logf("killed %s %s of %s (pid %d) after %.0f MiB of shares sent", p.Kind, p.Name, owners[i].Name, p.Pid, (bytesUploaded(t, g)-base)/(1<<20))
		}
		r := <-done
		figure(t, "200 MiB upload with %d plugin(s) killed -9: exit %d in %v", len(kills), r.r.Code, time.Since(start).Round(time.Millisecond))
		return r.c, r.r
	}
	find := func(n *Node, kind string) plugin {
		for _, p := range nodePlugins(t, n) {
			if p.Kind == kind {
				return p
			}
		}
		t.Fatalf("%s has no %s plugin: %v", n.Name, kind, children(n.Pid))
		return plugin{}
	}
	st := g.Storage()[0]

	t.Run("storage plugin, then the client's codec", func(t *testing.T) {
		sp, cp := find(st, "storage"), find(g.Client, "codec")
		// Shares go out at 5/3 the file's rate: kill at ~15% and ~45%.
		c, r := upload(t, 2400, []plugin{sp, cp}, []*Node{st, g.Client}, []float64{50 << 20, 150 << 20})
		if r.Code == 0 {
			acked.add(stored{c, 2400, size})
			t.Logf("the upload survived both kills")
		} else {
			oneLineError(t, "the upload across the codec kill", r)
			t.Logf("the upload failed: %s", lastLine(r.Stderr))
		}
		// The next call works, on new plugin processes.
		acked.add(stored{g.mustPut(t, g.Client, newGen(2401, 3<<20)), 2401, 3 << 20})
		waitPlugin(t, g.Client, "codec", cp.Name, cp.Pid, 10*time.Second)
		waitPlugin(t, st, "storage", sp.Name, sp.Pid, 10*time.Second)
	})

	t.Run("storage plugin alone: the upload succeeds", func(t *testing.T) {
		sp := find(st, "storage")
		c, r := upload(t, 2402, []plugin{sp}, []*Node{st}, []float64{100 << 20})
		if r.Code != 0 {
			t.Errorf("a 200 MiB upload failed although only one storage server lost its plugin: %v", r)
		} else {
			acked.add(stored{c, 2402, size})
		}
		acked.add(stored{g.mustPut(t, g.Client, newGen(2403, 1<<20)), 2403, 1 << 20})
		waitPlugin(t, st, "storage", sp.Name, sp.Pid, 10*time.Second)
	})

	t.Run("every acknowledged file reads back", func(t *testing.T) {
		start := time.Now()
		g.verifyAll(t, g.Client, acked.all())
		t.Logf("%d files read back in %v", len(acked.all()), time.Since(start).Round(time.Millisecond))
		if torn := tornShares(t, g.allShares("")); len(torn) > 0 {
			t.Errorf("share files of different sizes within one file (torn shares): %v", torn)
		}
	})
}

// TestKillNKDuringDownload kills -9 the two storage nodes (N-K) serving
// most of a 48 MiB download while it runs: it completes with the right
// bytes from the other three.
func TestKillNKDuringDownload(t *testing.T) {
	g := startGrid(t, GridOptions{})
	const size = 48 << 20
	c := g.mustPut(t, g.Client, newGen(2450, size))
	before := map[int]int64{}
	for _, n := range g.Storage() {
		before[n.Pid] = rchar(n.Pid)
	}
	var killed []*Node
	hw := newHashWriter()
	nw := &notifyWriter{w: hw, at: 8 << 20, fn: func() {
		ns := append([]*Node(nil), g.Storage()...)
		sort.Slice(ns, func(i, j int) bool {
			return rchar(ns[i].Pid)-before[ns[i].Pid] > rchar(ns[j].Pid)-before[ns[j].Pid]
		})
		for _, n := range ns[:2] {
			syscall.Kill(n.Pid, syscall.SIGKILL)
			killed = append(killed, n)
		}
	}}
	start := time.Now()
	r := tarn(t, CLI{Stdout: nw, Timeout: 5 * time.Minute}, "get", "--node", g.Client.Dir, c, "-")
	took := time.Since(start)
	if len(killed) != 2 {
		t.Fatalf("the download ended before 8 MiB: %v", r)
	}
	if r.Code != 0 || hw.n != size || hw.Sum() != genHash(2450, size) {
		t.Fatalf("get with %s and %s killed mid-download: %d bytes %s: %v", killed[0].Name, killed[1].Name, hw.n, hw.Sum(), r)
	}
	figure(t, "%d MiB download with 2 of 5 storage nodes (the busiest) killed -9 after 8 MiB: right bytes in %v", size>>20, took.Round(time.Millisecond))
}

// TestIntroducerDown kills -9 the introducer: the client keeps uploading
// and downloading; a storage node started while it is down is seen by the
// client once the introducer runs again.
func TestIntroducerDown(t *testing.T) {
	g := startGrid(t, GridOptions{})
	var intro *Node
	for _, n := range g.Nodes {
		if n.Role == "introducer" {
			intro = n
		}
	}
	before := stored{g.mustPut(t, g.Client, newGen(2500, 1<<20)), 2500, 1 << 20}
	g.kill(t, intro)

	var acked []stored
	t.Run("client works without the introducer", func(t *testing.T) {
		for i, size := range []int64{200000, 6 << 20} {
			seed := uint64(2501 + i)
			acked = append(acked, stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size})
		}
		g.verifyAll(t, g.Client, append(acked, before))
	})

	late := g.initNode(t, "storage", "storage-late", func(p string) string {
		p = setTOML(p, "grid", "name", fmt.Sprintf("%q", g.Name))
		p = setTOML(p, "storage", "listen", `["tcp:127.0.0.1:0"]`)
		return setTOML(p, "storage", "reserved_space", `"0"`)
	})
	g.runNode(t, late)
	lateID := nodeID(t, late)
	time.Sleep(2 * time.Second)
	if st, _ := g.status(t, g.Client); st.Known != 5 {
		t.Errorf("the client knows %d servers while the introducer is down, want the 5 it knew", st.Known)
	}

	g.restart(t, intro)
	start := time.Now()
	g.waitServers(t, g.Client, 6, 90*time.Second)
	figure(t, "a storage node started while the introducer was down is seen by the client %v after the introducer's restart", time.Since(start).Round(time.Millisecond))
	st, _ := g.status(t, g.Client)
	seen := false
	for _, s := range st.Servers {
		seen = seen || s.NodeID == lateID && s.Connected
	}
	if !seen {
		t.Errorf("status does not list %s (%s) as connected: %+v", late.Name, lateID, st.Servers)
	}
	acked = append(acked, stored{g.mustPut(t, g.Client, newGen(2510, 2<<20)), 2510, 2 << 20})
	g.verifyAll(t, g.Client, append(acked, before))
}

// shareSums is the SHA-256 of every sealed share file of the grid.
func shareSums(t testing.TB, g *Grid) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range g.allShares("") {
		sum := sha256.Sum256(s.bytes(t))
		out[s.key()] = hex.EncodeToString(sum[:])
	}
	return out
}

// lsJSON lists a grid directory through n.
func lsJSON(t testing.TB, n *Node, path string) (map[string]string, Result) {
	t.Helper()
	r := tarn(t, CLI{Timeout: 2 * time.Minute}, "ls", "--json", "--node", n.Dir, path)
	var es []struct {
		Name    string `json:"name"`
		ReadCap string `json:"read_cap"`
	}
	out := map[string]string{}
	if r.Code == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &es); err != nil {
			t.Fatalf("ls --json %s: %v\n%s", path, err, r.Stdout)
		}
		for _, e := range es {
			out[e.Name] = e.ReadCap
		}
	}
	return out, r
}

// putEntry stores generated bytes as a file at grid path p through n.
func putEntry(t testing.TB, n *Node, dir string, p string, seed uint64, size int64) Result {
	t.Helper()
	f := filepath.Join(dir, fmt.Sprintf("src-%d", seed))
	if err := os.WriteFile(f, genBytes(seed, size), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	return tarn(t, CLI{Timeout: 3 * time.Minute}, "put", "--node", n.Dir, f, p)
}

// TestWholeGridKill kills -9 every process of the grid at once, while an
// upload and a loop of directory writes run, and starts every node again:
// every share sealed before is there unchanged, nothing is left half
// written, and every file and directory entry that was acknowledged reads
// back byte for byte.
func TestWholeGridKill(t *testing.T) {
	g := startGrid(t, GridOptions{})
	cl := g.Client.Dir
	tmp := t.TempDir()
	var acked ledger
	for i, size := range []int64{30, 150000, 3 << 20} {
		seed := uint64(2600 + i)
		acked.add(stored{g.mustPut(t, g.Client, newGen(seed, size)), seed, size})
	}
	mustTarn(t, CLI{}, "create-alias", "--node", cl, "docs")
	mustTarn(t, CLI{}, "mkdir", "--node", cl, "-p", "docs:sub/deeper")
	entries := map[string]stored{} // grid path -> content
	for i, p := range []string{"docs:a.bin", "docs:sub/b.bin", "docs:sub/deeper/c.bin"} {
		seed, size := uint64(2610+i), int64(50000+i*70000)
		if r := putEntry(t, g.Client, tmp, p, seed, size); r.Code != 0 {
			t.Fatalf("put %s: %v", p, r)
		}
		entries[p] = stored{Seed: seed, Size: size}
	}
	sums := shareSums(t, g)

	// Writers in flight when the grid dies.
	var mu sync.Mutex
	stopLoop := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for i := 0; ; i++ {
			select {
			case <-stopLoop:
				return
			default:
			}
			p := fmt.Sprintf("docs:loop/f%03d", i)
			seed := uint64(2700 + i)
			if i == 0 {
				tarn(t, CLI{}, "mkdir", "--node", cl, "docs:loop")
			}
			if r := putEntry(t, g.Client, tmp, p, seed, 20000); r.Code == 0 {
				mu.Lock()
				entries[p] = stored{Seed: seed, Size: 20000}
				mu.Unlock()
			} else {
				return
			}
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; {
		mu.Lock()
		n := len(entries)
		mu.Unlock()
		if n >= 3+3 {
			break
		}
		select {
		case <-loopDone:
			t.Fatalf("the directory writer stopped before the kill after %d entries", n-3)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the directory writer made %d entries in 60s", n-3)
		}
	}
	bigDone := make(chan Result, 1)
	go func() {
		_, r := g.put(t, g.Client, newGen(2800, 64<<20))
		bigDone <- r
	}()
	// Kill when the loop has made a few entries and the big upload is
	// writing shares.
	stop := make(chan struct{})
	time.AfterFunc(60*time.Second, func() { close(stop) })
	if writingNode(g, stop) == nil {
		t.Fatal("no share was seen being written within 60s")
	}
	var pids []int
	for _, n := range g.Nodes {
		pids = append(pids, n.Pid)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	killedAt := time.Now()
	for _, n := range g.Nodes {
		g.kill(t, n) // waits until it is gone
	}
	close(stopLoop)
	<-loopDone
	if r := <-bigDone; r.Code == 0 {
		t.Logf("the 64 MiB upload finished before the kill")
		acked.add(stored{strings.TrimSpace(r.Stdout), 2800, 64 << 20})
	}
	mu.Lock()
	t.Logf("killed all %d processes of the grid; %d directory entries acknowledged", len(pids), len(entries))
	mu.Unlock()

	// Start it all again, introducer first, as an operator would.
	start := time.Now()
	for _, role := range []string{"introducer", "storage", "client"} {
		for _, n := range g.Nodes {
			if n.Role == role {
				g.restart(t, n)
			}
		}
	}
	g.waitServers(t, g.Client, len(g.Storage()), 90*time.Second)
	figure(t, "whole grid (%d nodes) killed -9 and run again: client sees every server %v after the restart began (%v after the kill)",
		len(g.Nodes), time.Since(start).Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))

	t.Run("sealed shares intact, nothing half written", func(t *testing.T) {
		now := shareSums(t, g)
		for p, sum := range sums {
			if now[p] != sum {
				t.Errorf("sealed share %s changed or vanished across kill -9 and restart", p)
			}
		}
		for _, n := range g.Storage() {
			if tmp := tmpFiles(n.Dir); len(tmp) > 0 {
				t.Errorf("%s has files left in tmp/: %v", n.Name, tmp)
			}
		}
		if torn := tornShares(t, g.allShares("")); len(torn) > 0 {
			t.Errorf("torn shares: %v", torn)
		}
	})
	t.Run("every acknowledged file reads back", func(t *testing.T) {
		g.verifyAll(t, g.Client, acked.all())
	})
	t.Run("every acknowledged directory entry is there", func(t *testing.T) {
		for p, f := range entries {
			var out bytes.Buffer
			r := tarn(t, CLI{Stdout: &out}, "cat", "--node", cl, p)
			if r.Code != 0 || !bytes.Equal(out.Bytes(), genBytes(f.Seed, f.Size)) {
				t.Errorf("acknowledged entry %s: %d bytes: %v", p, out.Len(), r)
			}
		}
		// A directory change the kill interrupted (never acknowledged) may
		// have reached only some servers: its folder then reads fine (the
		// newest version with K shares) but is unhealthy until repaired.
		// Nothing may be unrecoverable, and a repair must make all healthy.
		h := tarn(t, CLI{Timeout: 3 * time.Minute}, "deep-check", "--verify", "--node", cl, "docs:")
		if h.Code != 0 {
			t.Logf("deep-check --verify docs: after the restart: %v", h)
			if !strings.Contains(h.Stdout, " 0 unrecoverable") {
				t.Fatalf("deep-check --verify docs: after the restart: objects unrecoverable: %v", h)
			}
			if r := tarn(t, CLI{Timeout: 3 * time.Minute}, "deep-check", "--repair", "--json", "--node", cl, "docs:"); r.Code != 0 {
				t.Errorf("deep-check --repair docs: after the restart: %v", r)
			}
			if r := tarn(t, CLI{Timeout: 3 * time.Minute}, "deep-check", "--verify", "--node", cl, "docs:"); r.Code != 0 {
				t.Errorf("deep-check --verify docs: after the repair: %v", r)
				t.Logf("%v", tarn(t, CLI{}, "check", "--verify", "--json", "--node", cl, "docs:loop"))
			}
		}
	})
}

// TestConcurrentDirWriters has two client nodes add 50 files each to one
// shared directory while a storage node is killed -9 and another is
// stopped and resumed: every addition acknowledged by either client is
// listed afterwards, by both, and reads back byte for byte.
func TestConcurrentDirWriters(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, StorageNodes: 6, ServerTimeout: "3s"})
	c2 := g.addClient(t, "client-2", GridOptions{ServerTimeout: "3s"})
	g.waitServers(t, c2, 6, 60*time.Second)
	mustTarn(t, CLI{}, "create-alias", "--node", g.Client.Dir, "shared")
	var aliases map[string]string
	r := mustTarn(t, CLI{}, "alias", "list", "--json", "--node", g.Client.Dir)
	if err := json.Unmarshal([]byte(r.Stdout), &aliases); err != nil || aliases["shared"] == "" {
		t.Fatalf("alias list --json: %v\n%s", err, r.Stdout)
	}
	mustTarn(t, CLI{}, "alias", "add", "--node", c2.Dir, "shared", aliases["shared"])

	const each = 50
	type entry struct {
		seed uint64
		size int64
	}
	var mu sync.Mutex
	acked := map[string]entry{}
	var failed []string
	var slowest time.Duration
	progress := make([]int, 2)
	var wg sync.WaitGroup
	tmp := t.TempDir()
	start := time.Now()
	for w, n := range []*Node{g.Client, c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("w%d-%02d", w+1, i)
				seed := uint64(3000 + w*100 + i)
				size := int64(1000 + i*37)
				t0 := time.Now()
				r := putEntry(t, n, tmp, "shared:"+name, seed, size)
				mu.Lock()
				slowest = max(slowest, time.Since(t0))
				if r.Code == 0 {
					acked[name] = entry{seed, size}
				} else {
					failed = append(failed, name+": "+lastLine(r.Stderr))
					oneLineError(t, "put "+name, r)
				}
				progress[w] = i + 1
				mu.Unlock()
			}
		}()
	}
	waitProgress := func(n int) {
		for {
			mu.Lock()
			p := min(progress[0], progress[1])
			mu.Unlock()
			if p >= n {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := g.Storage()
	waitProgress(10)
	g.kill(t, st[0])
	t.Logf("killed -9 %s at %v", st[0].Name, time.Since(start).Round(time.Millisecond))
	waitProgress(20)
	syscallStop(st[1].Pid)
	t.Cleanup(func() { syscallCont(st[1].Pid) })
	t.Logf("stopped %s at %v", st[1].Name, time.Since(start).Round(time.Millisecond))
	// Resume after 10 s: a directory publish that cannot reach H homes
	// fails after server timeouts, so a long stop only makes the test slow.
	time.Sleep(10 * time.Second)
	syscallCont(st[1].Pid)
	t.Logf("resumed %s at %v", st[1].Name, time.Since(start).Round(time.Millisecond))
	wg.Wait()
	figure(t, "two clients adding %d files each to one directory, one server killed and one stopped for 10 s meanwhile: %v, %d acknowledged, %d failed, slowest put %v",
		each, time.Since(start).Round(time.Millisecond), len(acked), len(failed), slowest.Round(time.Millisecond))
	for _, f := range failed {
		t.Logf("failed: %s", f)
	}
	if len(acked) < each {
		t.Errorf("only %d of %d additions acknowledged", len(acked), 2*each)
	}

	for _, n := range []*Node{g.Client, c2} {
		listed, r := lsJSON(t, n, "shared:")
		if r.Code != 0 {
			t.Fatalf("ls shared: through %s: %v", n.Name, r)
		}
		var lost []string
		for name := range acked {
			if listed[name] == "" {
				lost = append(lost, name)
			}
		}
		if len(lost) > 0 {
			t.Errorf("through %s: %d acknowledged entries are not listed: %v", n.Name, len(lost), lost)
		}
		for name := range listed {
			if !strings.HasPrefix(name, "w1-") && !strings.HasPrefix(name, "w2-") {
				t.Errorf("through %s: unexpected entry %q", n.Name, name)
			}
		}
		t.Logf("%s lists %d entries", n.Name, len(listed))
	}
	// Every listed entry, acknowledged or not (a put that failed after its
	// directory version reached K servers may be there), holds its bytes.
	listed, _ := lsJSON(t, c2, "shared:")
	unacked := 0
	for name, c := range listed {
		var w, i int
		if _, err := fmt.Sscanf(name, "w%d-%d", &w, &i); err != nil {
			continue // reported above
		}
		seed, size := uint64(3000+(w-1)*100+i), int64(1000+i*37)
		if _, ok := acked[name]; !ok {
			unacked++
		}
		sum, n, r := g.getHash(t, g.Client, c)
		if r.Code != 0 || n != size || sum != genHash(seed, size) {
			t.Errorf("entry %s reads back as %d bytes %s: %v", name, n, sum, r)
		}
	}
	if unacked > 0 {
		t.Logf("%d entries whose put reported failure are in the directory anyway", unacked)
	}
}

// mountTmpfs mounts a tmpfs of size bytes at dir, unmounted when the test
// ends; it skips the test when mounting is not allowed here.
func mountTmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a full disk needs a small filesystem: mount -t tmpfs -o size=%s at %s failed (%v: %s)", size, dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; lazy unmount", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
}

// fill appends to the file at path until the filesystem is full and
// returns the bytes written.
func fill(t testing.TB, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("fill: %v", err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			if !strings.Contains(err.Error(), "no space") {
				t.Fatalf("fill %s: %v", path, err)
			}
			return n
		}
	}
}

// TestDiskFull gives one storage node a 20 MiB tmpfs for its shares (in
// share files, and packed for small files): a share that does not fit is
// refused and the upload lands on the others; when the disk fills while a
// share is being written, that share is abandoned (nothing half written
// stays), the upload goes elsewhere, the full node refuses new shares in a
// clear error, and it still serves the shares it holds, packed or not.
// Packed shares on a filling disk: TestPackedDiskFull.
func TestDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "full")
	mountTmpfs(t, mnt, "20m")
	store := filepath.Join(mnt, "store")
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "5s", StorageEdit: func(i int, p string) string {
		if i == 0 {
			return setTOML(p, "plugins.storage", "config", fmt.Sprintf("{path = %q}", store))
		}
		return p
	}})
	full := g.Storage()[0] // its shares live on the tmpfs
	// Its shares on the tmpfs, in share files or packed.
	fullStore := &Node{Name: full.Name, Dir: store}
	onFull := func(index string) []string {
		var out []string
		for _, s := range g.shares(fullStore, index) {
			out = append(out, s.key())
		}
		return out
	}
	var acked ledger
	small := stored{g.mustPut(t, g.Client, newGen(3100, 300000)), 3100, 300000}
	acked.add(small)
	if len(onFull(storageIndex(t, small.Cap))) != 1 {
		t.Fatalf("the node on the small disk took no share of the first file: %v", onFull(""))
	}
	// The first upload dialed the servers; a second small file's shares
	// go in one call per server, and the disk backend packs them.
	small2 := stored{g.mustPut(t, g.Client, newGen(3104, 300000)), 3104, 300000}
	acked.add(small2)
	if s := g.shares(fullStore, storageIndex(t, small2.Cap)); len(s) != 1 || !s[0].Packed {
		t.Fatalf("the node on the small disk holds %+v of the second small file, want one packed share", s)
	}

	t.Run("a share bigger than the disk is refused, the upload lands elsewhere", func(t *testing.T) {
		const size = 66 << 20 // shares of 22 MiB
		c := g.mustPut(t, g.Client, newGen(3101, size))
		acked.add(stored{c, 3101, size})
		if got := onFull(storageIndex(t, c)); len(got) > 0 {
			t.Errorf("a 22 MiB share was sealed on a 20 MiB disk: %v", got)
		}
		if tmp := tmpFiles(store); len(tmp) > 0 {
			t.Errorf("files left in tmp/ of the small disk: %v", tmp)
		}
		if n := len(g.allShares(storageIndex(t, c))); n < 4 {
			t.Errorf("%d shares on the other nodes, want 4", n)
		}
	})

	t.Run("disk fills while a share is written: abandoned, placed elsewhere", func(t *testing.T) {
		const size = 30 << 20 // shares of 10 MiB: fits until the disk is filled
		filler := filepath.Join(mnt, "filler")
		done := make(chan Result, 1)
		var c string
		go func() {
			var r Result
			c, r = g.put(t, g.Client, newGen(3102, size))
			done <- r
		}()
		deadline := time.Now().Add(60 * time.Second)
		for len(tmpFiles(store)) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the small disk never received a share")
			}
			select {
			case r := <-done:
				t.Fatalf("the upload ended before the small disk received its share: %v", r)
			case <-time.After(2 * time.Millisecond):
			}
		}
		n := fill(t, filler)
		t.Logf("filled the small disk with %d KiB while a share was being written", n>>10)
		r := <-done
		if r.Code != 0 {
			t.Fatalf("upload with one disk filling up mid-share (4 other servers): %v", r)
		}
		acked.add(stored{c, 3102, size})
		si := storageIndex(t, c)
		// The abandoned share must not stay, sealed or in tmp/.
		deadline = time.Now().Add(10 * time.Second)
		for len(tmpFiles(store)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if tmp := tmpFiles(store); len(tmp) > 0 {
			t.Errorf("a half-written share stays in tmp/ of the full disk: %v", tmp)
		}
		if got := onFull(si); len(got) > 0 {
			t.Errorf("a share was sealed on the disk that filled up while it was written: %v", got)
		}
		if torn := tornShares(t, g.allShares(si)); len(torn) > 0 {
			t.Errorf("torn shares: %v", torn)
		}
		for _, n := range []*Node{g.Client, full} {
			for _, l := range strings.Split(g.logText(n), "\n") {
				if strings.Contains(l, "no space") || strings.Contains(l, "full") {
					t.Logf("%s log: %s", n.Name, l)
				}
			}
		}
	})

	t.Run("full node: refuses new shares clearly, still serves reads", func(t *testing.T) {
		// The abandoned share's space came back: take it too.
		fill(t, filepath.Join(mnt, "filler"))
		others := g.Storage()[1:3]
		for _, n := range others {
			g.kill(t, n)
		}
		// Three servers left, one of them full: the file needs the full
		// node's share to be read.
		for _, f := range []stored{small, small2} {
			sum, size, r := g.getHash(t, g.Client, f.Cap)
			if r.Code != 0 || sum != genHash(f.Seed, f.Size) || size != f.Size {
				t.Errorf("get through the full node: %d bytes: %v", size, r)
			}
		}
		_, r := g.put(t, g.Client, newGen(3103, 2<<20))
		if r.Code == 0 {
			t.Fatalf("put with 3 servers left, one full, and H=4 succeeded")
		}
		oneLineError(t, "put with a full server", r)
		line := lastLine(r.Stderr)
		if !regexp.MustCompile(`\b1 full\b`).MatchString(line) {
			t.Errorf("the put error does not count the full server (1 full):\n%s", line)
		}
		t.Logf("error: %s", line)
		if tmp := tmpFiles(store); len(tmp) > 0 {
			t.Errorf("files left in tmp/ of the full disk: %v", tmp)
		}
		for _, n := range others {
			g.restart(t, n)
		}
		g.waitServers(t, g.Client, 5, 60*time.Second)
		g.verifyAll(t, g.Client, acked.all())
	})
}

// TestHungConnections holds idle and half-open connections to every
// storage node and the client's API, and freezes a second client node in
// the middle of an upload (its shares open on the servers): the first
// client's uploads and downloads are not held up.
func TestHungConnections(t *testing.T) {
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: "5s"})
	const size = 16 << 20
	start := time.Now()
	c := g.mustPut(t, g.Client, newGen(3200, size))
	base := time.Since(start)

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for _, n := range g.Storage() {
		var info NodeInfo
		b, _ := os.ReadFile(filepath.Join(n.Dir, "node.json"))
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatal(err)
		}
		addr := info.StorageURL[strings.LastIndex(info.StorageURL, "tcp:")+4:]
		for i := range 20 {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("dial %s (%s): %v", n.Name, addr, err)
			}
			if i%2 == 1 {
				conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}) // a TLS record header, then nothing
			}
			conns = append(conns, conn)
		}
	}
	api, _ := apiOf(t, g.Client)
	apiAddr := strings.TrimPrefix(api, "http://")
	for range 20 {
		conn, err := net.DialTimeout("tcp", apiAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial the API %s: %v", apiAddr, err)
		}
		conn.Write([]byte("GET /v1/ HTTP/1.1\r\nHost: x\r\n")) // headers never end
		conns = append(conns, conn)
	}

	c2 := g.addClient(t, "client-2", GridOptions{ServerTimeout: "5s"})
	g.waitServers(t, c2, 5, 60*time.Second)
	frozenDone := make(chan Result, 1)
	go func() {
		_, r := g.put(t, c2, newGen(3201, 48<<20))
		frozenDone <- r
	}()
	stop := make(chan struct{})
	time.AfterFunc(60*time.Second, func() { close(stop) })
	if writingNode(g, stop) == nil {
		t.Fatal("the second client's upload never wrote a share")
	}
	syscallStop(c2.Pid)
	t.Cleanup(func() { syscallCont(c2.Pid) })

	bound := 3*base + 10*time.Second
	start = time.Now()
	c3 := g.mustPut(t, g.Client, newGen(3202, size))
	up := time.Since(start)
	start = time.Now()
	for _, f := range []stored{{c, 3200, size}, {c3, 3202, size}} {
		g.verifyAll(t, g.Client, []stored{f})
	}
	down := time.Since(start)
	figure(t, "with 120 hung connections and a client frozen mid-upload: %d MiB put %v (alone %v), two gets %v",
		size>>20, up.Round(time.Millisecond), base.Round(time.Millisecond), down.Round(time.Millisecond))
	if up > bound || down > 2*bound {
		t.Errorf("held up by hung connections: put %v, gets %v (bound %v)", up, down, bound)
	}
	syscallCont(c2.Pid)
	r := <-frozenDone
	if r.Code != 0 {
		oneLineError(t, "the frozen client's upload", r)
		t.Logf("the frozen client's upload, resumed: %s", lastLine(r.Stderr))
	} else {
		t.Logf("the frozen client's upload finished after SIGCONT")
	}
}
