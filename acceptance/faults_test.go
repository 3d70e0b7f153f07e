//go:build acceptance

package acceptance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
)

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestLoseStorageNodes kills storage processes with SIGKILL: with N-K of
// them gone every file still reads back right; with one more gone get fails
// with one clear line naming the shares found and needed and writes no
// output file; an upload that cannot reach H servers says how many were
// usable; once the nodes run again nothing is lost.
func TestLoseStorageNodes(t *testing.T) {
	g := startGrid(t, GridOptions{})
	seg := segmentSize(t, g.Client)
	files := map[string][]byte{}
	var caps []string
	for i, size := range []int64{cap.LiteralMax, 4*seg + 99} {
		data := genBytes(uint64(200+i), size)
		c := g.mustPut(t, g.Client, bytes.NewReader(data))
		files[c] = data
		caps = append(caps, c)
	}
	st := g.Storage()
	const k, n = 3, 5

	checkAll := func(t *testing.T) {
		t.Helper()
		for _, c := range caps {
			var out bytes.Buffer
			if r := g.get(t, g.Client, c, &out); r.Code != 0 {
				t.Fatalf("get %s: %v", c, r)
			}
			if !bytes.Equal(out.Bytes(), files[c]) {
				t.Fatalf("get %s: %d bytes that differ from the %d put", c, out.Len(), len(files[c]))
			}
		}
	}

	t.Run("N-K storage nodes killed: get returns the right bytes", func(t *testing.T) {
		for _, node := range st[:n-k] {
			g.kill(t, node)
		}
		checkAll(t)
	})

	t.Run("upload below happiness names the usable servers", func(t *testing.T) {
		_, r := g.put(t, g.Client, bytes.NewReader(genBytes(299, 100000)))
		if r.Code == 0 {
			t.Fatalf("put with %d of 5 storage nodes up succeeded (H=4): %v", n-(n-k), r)
		}
		line := lastLine(r.Stderr)
		if !regexp.MustCompile(`\b3\b.*\bservers?\b|\bservers?\b.*\b3\b`).MatchString(line) || !strings.Contains(line, "4") {
			t.Errorf("put error does not say that 3 servers were usable of the 4 needed:\n%s", line)
		}
	})

	t.Run("one more killed: clear error naming shares found and needed", func(t *testing.T) {
		g.kill(t, st[n-k])
		out := filepath.Join(t.TempDir(), "out.bin")
		for _, c := range caps[1:] { // the literal file needs no server
			start := time.Now()
			r := tarn(t, CLI{Timeout: 3 * time.Minute}, "get", "--node", g.Client.Dir, c, out)
			took := time.Since(start)
			if r.Code == 0 {
				t.Fatalf("get with 2 of 5 storage nodes up succeeded: %v", r)
			}
			line := lastLine(r.Stderr)
			if !regexp.MustCompile(`\b2 shares? found\b`).MatchString(line) || !regexp.MustCompile(`\b3 needed\b`).MatchString(line) {
				t.Errorf("get error does not name 2 shares found and 3 needed:\n%s", r.Stderr)
			}
			if strings.Count(strings.TrimSpace(r.Stderr), "\n") > 2 {
				t.Errorf("get error is more than a short message:\n%s", r.Stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed get left %s behind", out)
			}
			t.Logf("failed in %v: %s", took.Round(time.Millisecond), line)
		}
		// The literal file still reads: it lives in its cap.
		var buf bytes.Buffer
		if r := g.get(t, g.Client, caps[0], &buf); r.Code != 0 || !bytes.Equal(buf.Bytes(), files[caps[0]]) {
			t.Errorf("literal get with the grid down: %v", r)
		}
	})

	t.Run("killed nodes run again: nothing lost", func(t *testing.T) {
		for _, node := range st[:n-k+1] {
			g.restart(t, node)
		}
		g.waitServers(t, g.Client, n, 60*time.Second)
		checkAll(t)
	})
}

// flipBytes inverts count bytes of the file at path, spread over its
// middle half (the blocks), and returns the offsets.
func flipBytes(t testing.TB, path string, count int, rng *rand.Rand) []int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open share: %v", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	size := st.Size()
	var offs []int64
	for range count {
		off := size/4 + rng.Int64N(size/2)
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	return offs
}

// TestCorruptShares flips bytes inside stored share files: get still
// returns the right bytes and the client logs the corruption; with more
// than N-K shares damaged get fails and never returns a wrong byte. No
// share file holds the plaintext.
func TestCorruptShares(t *testing.T) {
	g := startGrid(t, GridOptions{})
	seg := segmentSize(t, g.Client)
	size := 3*seg + 4321
	sent := newHashWriter()
	c := g.mustPut(t, g.Client, teeReader(newGen(300, size), sent))
	si := storageIndex(t, c)
	shares := g.allShares(si)
	if len(shares) != 5 {
		t.Fatalf("%d shares of %s, want 5", len(shares), si)
	}

	t.Run("no share holds the plaintext marker", func(t *testing.T) {
		all := g.allShares("")
		if len(all) == 0 {
			t.Fatal("no share files found")
		}
		for _, s := range all {
			b, err := os.ReadFile(s.Path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte(marker[:16])) {
				t.Errorf("share %s holds plaintext", s.Path)
			}
		}
		t.Logf("%d share files checked", len(all))
	})

	rng := rand.New(rand.NewPCG(1, 2))
	t.Run("N-K shares damaged: right bytes, corruption logged", func(t *testing.T) {
		// Damage two of the shares a download reads (the nodes that read
		// the most during a clean get), so that it must notice.
		before := map[int]int64{}
		for _, n := range g.Storage() {
			before[n.Pid] = rchar(n.Pid)
		}
		if sum, _, r := g.getHash(t, g.Client, c); r.Code != 0 || sum != sent.Sum() {
			t.Fatalf("clean get: %v", r)
		}
		sort.Slice(shares, func(i, j int) bool {
			a, b := shares[i].Node.Pid, shares[j].Node.Pid
			return rchar(a)-before[a] > rchar(b)-before[b]
		})
		for _, s := range shares[:2] {
			offs := s.flip(t, 8, rng)
			t.Logf("flipped 8 bytes of share %s on %s at %v", s.Num, s.Node.Name, offs)
		}
		for i := range 2 {
			sum, n, r := g.getHash(t, g.Client, c)
			if r.Code != 0 {
				t.Fatalf("get %d: %v", i, r)
			}
			if n != size || sum != sent.Sum() {
				t.Fatalf("get %d: %d bytes sha256 %s, want %d bytes %s", i, n, sum, size, sent.Sum())
			}
		}
		log := g.logText(g.Client)
		if !strings.Contains(strings.ToLower(log), "corrupt") {
			t.Errorf("the client's log says nothing of corruption:\n%s", tail(log, 2000))
		} else {
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(strings.ToLower(l), "corrupt") {
					t.Logf("client log: %s", l)
					break
				}
			}
		}
		st, r := g.status(t, g.Client)
		if r.Code != 0 {
			t.Fatalf("status: %v", r)
		}
		b, _ := json.Marshal(st.GridStats)
		if v, ok := st.GridStats["CorruptShares"].(float64); !ok || v < 1 {
			t.Errorf("status grid_stats do not count a corrupt share: %s", b)
		}
	})

	t.Run("more than N-K damaged: get fails, no wrong byte", func(t *testing.T) {
		shares[2].flip(t, 8, rng)
		out := filepath.Join(t.TempDir(), "out.bin")
		r := tarn(t, CLI{Timeout: 3 * time.Minute}, "get", "--node", g.Client.Dir, c, out)
		if r.Code == 0 {
			t.Fatalf("get with 3 of 5 shares damaged (K=3) succeeded: %v", r)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a failed get left %s behind", out)
		}
		t.Logf("error (to a file): %s", lastLine(r.Stderr))
		t.Run("the error says why", func(t *testing.T) {
			// One clear line: it must name what went wrong (corrupt or
			// not enough good shares), not only send the user to the log.
			line := strings.ToLower(lastLine(r.Stderr))
			if !strings.Contains(line, "corrupt") && !strings.Contains(line, "good shares") {
				t.Errorf("BUG: get with 3 of 5 shares damaged fails with %q: it does not say that shares are corrupt", lastLine(r.Stderr))
			}
		})
		// Streamed to stdout, whatever arrives before the error must be
		// a prefix of the file.
		var buf bytes.Buffer
		r = g.get(t, g.Client, c, &buf)
		if r.Code == 0 {
			t.Fatalf("get - with 3 of 5 shares damaged succeeded")
		}
		want := genBytes(300, int64(buf.Len()))
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("get - wrote %d bytes that are not the file's first bytes", buf.Len())
		}
		t.Logf("error: %s (%d good bytes streamed first)", lastLine(r.Stderr), buf.Len())
	})
}

// rchar is the bytes read by a node's process and its plugins.
func rchar(pid int) int64 {
	var total int64
	for _, p := range append([]int{pid}, pidsOf(children(pid))...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			var v int64
			if _, err := fmt.Sscanf(l, "rchar: %d", &v); err == nil {
				total += v
			}
		}
	}
	return total
}

// notifyWriter calls fn once after at bytes were written through it.
type notifyWriter struct {
	w    *hashWriter
	at   int64
	n    atomic.Int64
	fn   func()
	done atomic.Bool
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if w.n.Add(int64(n)) >= w.at && w.done.CompareAndSwap(false, true) {
		w.fn()
	}
	return n, err
}

// TestFrozenServer stops one storage process with SIGSTOP in the middle of
// an upload and of a download: both finish, with the right bytes, within
// a bound set by client.server_timeout (lowered to 3s for the test).
func TestFrozenServer(t *testing.T) {
	const timeout = 3 * time.Second
	g := startGrid(t, GridOptions{Manual: true, ServerTimeout: timeout.String()})
	size := int64(48 << 20)

	// A baseline with every server up.
	start := time.Now()
	c0 := g.mustPut(t, g.Client, newGen(400, size))
	base := time.Since(start)
	t.Logf("baseline put of %d MiB: %v", size>>20, base.Round(time.Millisecond))
	bound := 2*base + 2*timeout + 5*time.Second

	t.Run("upload", func(t *testing.T) {
		// Freeze the first storage node whose share is being written
		// (its backend's tmp/ folder holds a file being written).
		frozen := make(chan *Node, 1)
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, n := range g.Storage() {
					if len(findFiles(n.Dir, func(rel string) bool { return strings.Contains(filepath.ToSlash(rel), "tmp/") })) > 0 {
						syscallStop(n.Pid)
						frozen <- n
						return
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		sent := newHashWriter()
		start := time.Now()
		c, r := g.put(t, g.Client, teeReader(newGen(401, size), sent))
		took := time.Since(start)
		close(stop)
		var fn *Node
		select {
		case fn = <-frozen:
			t.Cleanup(func() { syscallCont(fn.Pid) })
		default:
			t.Fatalf("no storage node was seen writing a share, none frozen (put: %v)", r)
		}
		if r.Code != 0 {
			t.Fatalf("put with %s frozen: %v", fn.Name, r)
		}
		figure(t, "upload of %d MiB with %s frozen mid-upload: %v (all up: %v; server_timeout %v)",
			size>>20, fn.Name, took.Round(time.Millisecond), base.Round(time.Millisecond), timeout)
		if took > bound {
			t.Errorf("upload took %v with a frozen server, more than %v", took, bound)
		}
		syscallCont(fn.Pid)
		sum, n, gr := g.getHash(t, g.Client, c)
		if gr.Code != 0 || n != size || sum != sent.Sum() {
			t.Fatalf("reading back the upload made with %s frozen: %d bytes %s, want %s: %v", fn.Name, n, sum, sent.Sum(), gr)
		}
	})

	t.Run("download", func(t *testing.T) {
		want := genHash(400, size)
		// Find the busiest server once the download is under way, and
		// freeze it.
		before := map[int]int64{}
		for _, n := range g.Storage() {
			before[n.Pid] = rchar(n.Pid)
		}
		var fn atomic.Pointer[Node]
		hw := newHashWriter()
		nw := &notifyWriter{w: hw, at: 4 << 20, fn: func() {
			var best *Node
			var most int64 = -1
			for _, n := range g.Storage() {
				if d := rchar(n.Pid) - before[n.Pid]; d > most {
					best, most = n, d
				}
			}
			syscallStop(best.Pid)
			fn.Store(best)
		}}
		start := time.Now()
		r := tarn(t, CLI{Stdout: nw, Timeout: 5 * time.Minute}, "get", "--node", g.Client.Dir, c0, "-")
		took := time.Since(start)
		if n := fn.Load(); n != nil {
			t.Cleanup(func() { syscallCont(n.Pid) })
			defer syscallCont(n.Pid)
		} else {
			t.Fatalf("download ended before 4 MiB, no server frozen: %v", r)
		}
		if r.Code != 0 {
			t.Fatalf("get with %s frozen: %v", fn.Load().Name, r)
		}
		if hw.n != size || hw.Sum() != want {
			t.Fatalf("get with a frozen server: %d bytes sha256 %s, want %d bytes %s", hw.n, hw.Sum(), size, want)
		}
		figure(t, "download of %d MiB with %s frozen mid-download: %v (server_timeout %v)",
			size>>20, fn.Load().Name, took.Round(time.Millisecond), timeout)
		if took > bound {
			t.Errorf("download took %v with a frozen server, more than %v", took, bound)
		}
	})
}

// writingNode waits until a storage node's backend has a share being
// written (a file in its tmp/ folder) and returns that node, or nil.
func writingNode(g *Grid, stop <-chan struct{}) *Node {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		for _, n := range g.Storage() {
			if !alive(n.Pid) {
				continue
			}
			if len(findFiles(n.Dir, func(rel string) bool { return strings.Contains(filepath.ToSlash(rel), "tmp/") })) > 0 {
				return n
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestKillDuringTransfer kills -9 a storage process while it receives a
// share, and another while it serves a download: the upload places the
// share elsewhere and the download reads from the others, both with the
// right bytes. The killed node, run again, shows no torn share.
func TestKillDuringTransfer(t *testing.T) {
	g := startGrid(t, GridOptions{})
	const size = 48 << 20

	var victim *Node
	t.Run("upload", func(t *testing.T) {
		stop := make(chan struct{})
		got := make(chan *Node, 1)
		go func() {
			n := writingNode(g, stop)
			if n != nil {
				syscall.Kill(n.Pid, syscall.SIGKILL)
			}
			got <- n
		}()
		sent := newHashWriter()
		c, r := g.put(t, g.Client, teeReader(newGen(1400, size), sent))
		close(stop)
		victim = <-got
		if victim == nil {
			t.Fatalf("no storage node was seen writing a share (put: %v)", r)
		}
		if r.Code != 0 {
			t.Fatalf("put with %s killed mid-upload: %v", victim.Name, r)
		}
		g.kill(t, victim) // wait until it is gone
		sum, n, gr := g.getHash(t, g.Client, c)
		if gr.Code != 0 || n != size || sum != sent.Sum() {
			t.Fatalf("reading back the upload made while %s died: %d bytes: %v", victim.Name, n, gr)
		}
		t.Logf("killed %s mid-upload; upload and read back fine", victim.Name)
	})
	if victim == nil {
		t.FailNow()
	}

	t.Run("no torn share after restart", func(t *testing.T) {
		g.restart(t, victim)
		g.waitServers(t, g.Client, len(g.Storage()), 60*time.Second)
		if tmp := findFiles(victim.Dir, func(rel string) bool { return strings.Contains(filepath.ToSlash(rel), "tmp/") }); len(tmp) > 0 {
			t.Errorf("files left in the backend's tmp/ after a restart: %v", tmp)
		}
		sizes := map[string]map[int64]int{}
		for _, s := range g.allShares("") {
			size, ok := s.size()
			if !ok {
				t.Fatalf("share %s/%s on %s vanished", s.Index, s.Num, s.Node.Name)
			}
			if sizes[s.Index] == nil {
				sizes[s.Index] = map[int64]int{}
			}
			sizes[s.Index][size]++
		}
		for si, m := range sizes {
			if len(m) != 1 {
				t.Errorf("shares of %s have different sizes %v: a torn share is visible", si, m)
			}
		}
	})

	t.Run("download", func(t *testing.T) {
		c := g.mustPut(t, g.Client, newGen(1401, size))
		want := genHash(1401, size)
		before := map[int]int64{}
		for _, n := range g.Storage() {
			before[n.Pid] = rchar(n.Pid)
		}
		var killed atomic.Pointer[Node]
		hw := newHashWriter()
		nw := &notifyWriter{w: hw, at: 4 << 20, fn: func() {
			var best *Node
			var most int64 = -1
			for _, n := range g.Storage() {
				if d := rchar(n.Pid) - before[n.Pid]; d > most {
					best, most = n, d
				}
			}
			syscall.Kill(best.Pid, syscall.SIGKILL)
			killed.Store(best)
		}}
		r := tarn(t, CLI{Stdout: nw, Timeout: 5 * time.Minute}, "get", "--node", g.Client.Dir, c, "-")
		k := killed.Load()
		if k == nil {
			t.Fatalf("download ended before 4 MiB: %v", r)
		}
		if r.Code != 0 || hw.n != size || hw.Sum() != want {
			t.Fatalf("get with %s killed mid-download: %d bytes sha256 %s (want %s): %v", k.Name, hw.n, hw.Sum(), want, r)
		}
		t.Logf("killed %s mid-download; download fine", k.Name)
	})
}
