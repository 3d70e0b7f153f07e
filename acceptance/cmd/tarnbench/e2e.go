package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// endpoints is the part of DIR/endpoints.json (written by `tarn dev` once
// the client sees every storage node) that the harness reads.
type endpoints struct {
	Client struct {
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
	RootCap string `json:"root_cap"` // the directory the frontends serve
}

// devGrid is a running `tarn dev` and how to reach its client.
type devGrid struct {
	bin    string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the dev process has exited
	log    *os.File
	ep     endpoints
	front  frontendEndpoints // the WebDAV and SFTP frontends, when running
	api    *apiClient
	shares struct{ K, H, N int }
	pid    int           // the client node's
	cliCPU time.Duration // CPU time of the last CLI command run
}

// startGrid runs `tarn dev --dir DIR --storage-nodes n` in its own process
// group and waits for its endpoints and a working upload.
func startGrid(ctx context.Context, bin, dir string, n int) (_ *devGrid, err error) {
	logf, err := os.Create(filepath.Join(dir, "dev.log"))
	if err != nil {
		return nil, err
	}
	g := &devGrid{bin: bin, dir: filepath.Join(dir, "grid"), log: logf, exited: make(chan struct{})}
	g.cmd = exec.Command(bin, "dev", "--dir", g.dir, "--storage-nodes", strconv.Itoa(n))
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.SysProcAttr = gridProcAttr()
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start tarn dev: %w", err)
	}
	go func() { g.cmd.Wait(); close(g.exited) }()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, g.logTail())
			g.stop()
		}
	}()

	epPath := filepath.Join(g.dir, "endpoints.json")
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, rerr := os.ReadFile(epPath)
		if rerr == nil && json.Unmarshal(b, &g.ep) == nil && g.ep.Client.APIURL != "" {
			json.Unmarshal(b, &g.front)
			break
		}
		if err := g.wait(ctx, deadline, "its endpoints.json"); err != nil {
			return nil, err
		}
	}
	tok, err := os.ReadFile(g.ep.Client.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("tarn dev: read the client's api token: %w", err)
	}
	g.api = newAPIClient(g.ep.Client.APIURL, strings.TrimSpace(string(tok)))
	for _, nd := range g.ep.Nodes {
		if nd.Role == "client" || nd.Dir == g.ep.Client.NodeDir {
			g.pid = nd.Pid
		}
	}
	if g.pid == 0 {
		return nil, errors.New("tarn dev: endpoints.json names no client process")
	}
	// The grid is up when a small upload works.
	probe := make([]byte, 4096)
	for {
		rand.NewChaCha8([32]byte{1}).Read(probe)
		_, perr := g.api.put(ctx, probe)
		if perr == nil {
			break
		}
		if err := g.wait(ctx, deadline, "a first upload ("+perr.Error()+")"); err != nil {
			return nil, err
		}
	}
	st, err := g.api.status(ctx)
	if err != nil {
		return nil, fmt.Errorf("tarn dev: client status: %w", err)
	}
	g.shares.K, g.shares.H, g.shares.N = st.Shares.K, st.Shares.H, st.Shares.N
	return g, nil
}

// wait sleeps a little, failing once the deadline passed or tarn dev ended.
func (g *devGrid) wait(ctx context.Context, deadline time.Time, what string) error {
	if time.Now().After(deadline) {
		return fmt.Errorf("tarn dev: no %s within 90 s", what)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.exited:
		return fmt.Errorf("tarn dev exited (%v) before %s", g.cmd.ProcessState, what)
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

// logTail is the end of tarn dev's output, for an error message.
func (g *devGrid) logTail() string {
	b, _ := os.ReadFile(g.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "tarn dev output (end):\n" + string(b)
}

// stop ends the grid: SIGTERM to tarn dev (which stops its nodes), then
// SIGKILL to its process group and to every node it listed that still
// runs the same binary. It is safe to call twice.
func (g *devGrid) stop() {
	if g.cmd.Process != nil {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.exited:
			case <-time.After(15 * time.Second):
			}
			killGroup(g.cmd.Process.Pid)
			<-g.exited
		}
	}
	for _, nd := range g.ep.Nodes {
		if nd.Pid > 0 && runs(nd.Pid, g.bin) {
			killPid(nd.Pid)
		}
	}
	g.log.Close()
}

// runs reports whether process pid still runs (not a zombie) the binary
// bin, so that a recycled pid is never killed.
func runs(pid int, bin string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	want, err := filepath.Abs(bin)
	if err != nil {
		return false
	}
	if w, err := filepath.EvalSymlinks(want); err == nil {
		want = w
	}
	return strings.TrimSuffix(exe, " (deleted)") == want
}

// cli runs one tarn command against the client node and returns its
// standard output, trimmed.
func (g *devGrid) cli(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	return g.run(ctx, stdin, stdout, append(args, "--quiet")...)
}

// run is cli for commands without a --quiet flag (deep-check).
func (g *devGrid) run(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	args = append(args, "--node", g.ep.Client.NodeDir)
	cmd := exec.CommandContext(ctx, g.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = &errb
	err := cmd.Run()
	if cmd.ProcessState != nil {
		g.cliCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("tarn %s: %w", args[0], ctx.Err())
		}
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return "", fmt.Errorf("tarn %s: %w: %s", args[0], err, msg)
		}
		return "", fmt.Errorf("tarn %s: %w", args[0], err)
	}
	return strings.TrimSpace(out.String()), nil
}

// putCap runs `tarn put` and returns the cap it printed (its last line).
func (g *devGrid) putCap(ctx context.Context, stdin io.Reader, file string) (string, error) {
	out, err := g.cli(ctx, stdin, nil, "put", file)
	if err != nil {
		return "", err
	}
	lines := strings.Split(out, "\n")
	c := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(c, "tarn:") {
		return "", fmt.Errorf("tarn put %s: printed %q, not a cap", file, out)
	}
	return c, nil
}

// e2eOptions say which end-to-end figures to measure.
type e2eOptions struct {
	bigFile    int64 // bytes of the CLI put/get file (256 MiB)
	smallFiles int   // how many 4 KiB files
	apiWorkers int   // concurrent uploads for the API's small-file figure
	giant      int64 // bytes of the RSS transfer (1 GiB), 0 to skip
	// frontLimit stops each rclone small-file upload after this long (0:
	// never); the rates are then over the files that arrived.
	frontLimit time.Duration
}

// measureE2E starts a fresh dev grid in tmp, measures on it, and stops it.
func measureE2E(ctx context.Context, r *Report, bin, tmp string, o e2eOptions) error {
	return measureE2Ehook(ctx, r, bin, tmp, o, nil)
}

// measureE2Ehook is measureE2E that calls started, when set, with the grid
// once it is up (tests use it to see the grid's processes).
func measureE2Ehook(ctx context.Context, r *Report, bin, tmp string, o e2eOptions, started func(*devGrid)) error {
	g, err := startGrid(ctx, bin, tmp, 5)
	if err != nil {
		return err
	}
	defer g.stop()
	if started != nil {
		started(g)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("dev grid: 5 storage nodes, shares k=%d h=%d n=%d", g.shares.K, g.shares.H, g.shares.N))
	rsKey := fmt.Sprintf("rs%d%d", g.shares.K, g.shares.N)
	if _, ok := r.find("ceiling." + rsKey + ".1core"); !ok {
		if err := addRSCeiling(ctx, r, g.shares.K, g.shares.N, time.Second); err != nil {
			return err
		}
	}
	addPipelineCeilings(r, rsKey)
	if st, err := g.api.status(ctx); err == nil {
		r.add(Figure{Key: "e2e.rss.client.idle", Name: "client node RSS, idle after start", Value: float64(rssKiB(g.pid, "VmRSS")) / 1024, Unit: "MiB",
			Note: fmt.Sprintf("%d plugin processes beside it", len(st.Plugins))})
	}

	addTahoeRefs(r)
	if err := bigFile(ctx, r, g, tmp, o.bigFile); err != nil {
		return err
	}
	if err := webdavBig(ctx, r, g, tmp, o.bigFile); err != nil {
		return err
	}
	if err := sftpBig(ctx, r, g, tmp, o.bigFile); err != nil {
		return err
	}
	if err := smallFilesCLI(ctx, r, g, tmp, o.smallFiles); err != nil {
		return err
	}
	if err := smallFilesAPI(ctx, r, g, o.smallFiles, o.apiWorkers); err != nil {
		return err
	}
	// Before the frontends' small files: their directories and caches
	// would count in the client's peak RSS.
	if o.giant > 0 {
		if err := giantRSS(ctx, r, g, o.giant); err != nil {
			return err
		}
	}
	return smallFilesFrontends(ctx, r, g, tmp, o.smallFiles, o.frontLimit)
}

// addRSCeiling measures Reed-Solomon k-of-n when the grid uses parameters
// the ceiling phase did not cover.
func addRSCeiling(ctx context.Context, r *Report, k, n int, d time.Duration) error {
	return addCeiling(ctx, r, ceiling{fmt.Sprintf("rs%d%d", k, n), fmt.Sprintf("Reed-Solomon %d-of-%d encode", k, n), rsWork(k, n)}, d)
}

// writeRandomFile writes size seeded random bytes to path and returns
// their SHA-256.
func writeRandomFile(path string, size int64, seed byte) ([32]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{seed, 'b'}), size)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		f.Close()
		return [32]byte{}, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

func fileSum(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, fmt.Errorf("read %s: %w", path, err)
	}
	return [32]byte(h.Sum(nil)), nil
}

// mbps is size bytes over d in MB/s.
func mbps(size int64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }

// sizeName is "256MiB" or "1GiB".
func sizeName(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// addVsPipeline adds f three times: against the one-core and the
// all-core pipeline ceiling, and against issue 8's one-core ceiling (with
// SHA-256 for the hash).
func addVsPipeline(r *Report, f Figure) {
	key := f.Key
	r.add(r.compare(f, "ceiling.pipeline.1core"))
	f.Key = key + "/allcores"
	r.add(r.compare(f, "ceiling.pipeline.allcores"))
	f.Key = key + "/sha256"
	r.add(r.compare(f, "ceiling.pipeline.sha256.1core"))
}

// bigFile puts and gets one random file through the CLI and checks the
// bytes that come back.
func bigFile(ctx context.Context, r *Report, g *devGrid, tmp string, size int64) error {
	in := filepath.Join(tmp, "big.in")
	out := filepath.Join(tmp, "big.out")
	defer os.Remove(in)
	defer os.Remove(out)
	sum, err := writeRandomFile(in, size, seedCLIBig)
	if err != nil {
		return err
	}
	cpu0 := g.cpuSnapshot()
	t0 := time.Now()
	c, err := g.putCap(ctx, nil, in)
	if err != nil {
		return err
	}
	put := time.Since(t0)
	putCLI := g.cliCPU
	cpu1 := g.cpuSnapshot()
	t1 := time.Now()
	if _, err := g.cli(ctx, nil, nil, "get", c, out); err != nil {
		return err
	}
	get := time.Since(t1)
	cpu2 := g.cpuSnapshot()
	got, err := fileSum(out)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("tarn get of a %s file returned other bytes than were put", sizeName(size))
	}
	name := sizeName(size)
	addVsPipeline(r, Figure{Key: "e2e.cli.put." + name, Name: "tarn put " + name, Value: mbps(size, put), Unit: "MB/s"})
	addVsPipeline(r, Figure{Key: "e2e.cli.get." + name, Name: "tarn get " + name, Value: mbps(size, get), Unit: "MB/s"})
	addCPU(r, "put."+name, "tarn put "+name, size, cpu1.grid-cpu0.grid, cpu1.client-cpu0.client, putCLI)
	addCPU(r, "get."+name, "tarn get "+name, size, cpu2.grid-cpu1.grid, cpu2.client-cpu1.client, g.cliCPU)
	return nil
}

// smallFiles makes n distinct 4 KiB files' contents.
func smallFiles(n int) [][]byte {
	r := rand.NewChaCha8([32]byte{3})
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, 4096)
		r.Read(out[i])
	}
	return out
}

// smallFilesCLI puts n 4 KiB files with one `tarn put` each, one after the
// other, as a shell loop would, then gets each back.
func smallFilesCLI(ctx context.Context, r *Report, g *devGrid, tmp string, n int) error {
	dir := filepath.Join(tmp, "small")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	data := smallFiles(n)
	for i, d := range data {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), d, 0o644); err != nil {
			return err
		}
	}
	caps := make([]string, n)
	t0 := time.Now()
	for i := range data {
		c, err := g.putCap(ctx, nil, filepath.Join(dir, fmt.Sprintf("f%04d", i)))
		if err != nil {
			return fmt.Errorf("small file %d: %w", i, err)
		}
		caps[i] = c
	}
	put := time.Since(t0)
	t1 := time.Now()
	for i, c := range caps {
		if _, err := g.cli(ctx, nil, nil, "get", c, filepath.Join(dir, fmt.Sprintf("g%04d", i))); err != nil {
			return fmt.Errorf("small file %d: %w", i, err)
		}
	}
	get := time.Since(t1)
	for i, d := range data {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("g%04d", i)))
		if err != nil {
			return err
		}
		if !bytes.Equal(b, d) {
			return fmt.Errorf("tarn get of small file %d returned other bytes than were put", i)
		}
	}
	note := "one tarn process per file, one after another"
	r.add(r.compare(Figure{Key: "e2e.cli.put.small", Name: fmt.Sprintf("tarn put, %d files of 4 KiB", n), Value: float64(n) / put.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.cli.put.small"))
	r.add(r.compare(Figure{Key: "e2e.cli.get.small", Name: fmt.Sprintf("tarn get, %d files of 4 KiB", n), Value: float64(n) / get.Seconds(), Unit: "files/s", Note: note}, "ref.tahoe.get.small"))
	return nil
}

// smallFilesAPI puts and gets n 4 KiB files through the client's local
// API with workers requests in flight: the node's own rate, without a
// process start per file. Contents differ from the CLI's, so nothing
// is deduplicated.
func smallFilesAPI(ctx context.Context, r *Report, g *devGrid, n, workers int) error {
	data := smallFiles(n + 1)[1:] // shifted: other contents than the CLI's
	for _, d := range data {
		d[0] ^= 0xa5
	}
	caps := make([]string, n)
	run := func(op func(i int) error) (time.Duration, error) {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			first error
			next  int
		)
		t0 := time.Now()
		for range workers {
			wg.Go(func() {
				for {
					mu.Lock()
					i := next
					next++
					stop := i >= n || first != nil
					mu.Unlock()
					if stop {
						return
					}
					if err := op(i); err != nil {
						mu.Lock()
						first = cmp(first, fmt.Errorf("small file %d through the api: %w", i, err))
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t0), first
	}
	put, err := run(func(i int) error {
		c, err := g.api.put(ctx, data[i])
		caps[i] = c
		return err
	})
	if err != nil {
		return err
	}
	get, err := run(func(i int) error {
		b, err := g.api.get(ctx, caps[i])
		if err != nil {
			return err
		}
		if !bytes.Equal(b, data[i]) {
			return errors.New("returned other bytes than were put")
		}
		return nil
	})
	if err != nil {
		return err
	}
	note := fmt.Sprintf("HTTP to the local API, %d requests in flight", workers)
	r.add(Figure{Key: "e2e.api.put.small", Name: fmt.Sprintf("API put, %d files of 4 KiB", n), Value: float64(n) / put.Seconds(), Unit: "files/s", Note: note})
	r.add(Figure{Key: "e2e.api.get.small", Name: fmt.Sprintf("API get, %d files of 4 KiB", n), Value: float64(n) / get.Seconds(), Unit: "files/s", Note: note})
	return nil
}

// rssKiB reads a field (VmRSS, VmHWM) of /proc/PID/status in KiB; 0 when
// the process is gone.
func rssKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	return statusKiB(f, field)
}

// statusKiB finds "FIELD:   1234 kB" in a /proc/PID/status text and
// returns 1234; 0 when the field is missing or not a size in kB.
func statusKiB(r io.Reader, field string) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return 0
		}
		v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || v < 0 {
			return 0
		}
		return v
	}
	return 0
}

// resetPeak sets a process's VmHWM back to its current RSS (Linux 4.0+).
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// peakWatch tracks a process's peak RSS during one transfer: its VmHWM
// after a reset when the kernel allows that, else the largest VmRSS seen
// by sampling every 20 ms.
type peakWatch struct {
	pid     int
	reset   bool
	stop    chan struct{}
	done    chan struct{}
	sampled int64
}

func watchPeak(pid int) *peakWatch {
	w := &peakWatch{pid: pid, reset: resetPeak(pid), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			w.sampled = max(w.sampled, rssKiB(pid, "VmRSS"))
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// end returns the peak in MiB and how it was measured.
func (w *peakWatch) end() (float64, string) {
	close(w.stop)
	<-w.done
	if w.reset {
		if hwm := rssKiB(w.pid, "VmHWM"); hwm > 0 {
			return float64(max(hwm, w.sampled)) / 1024, "VmHWM after a reset of clear_refs"
		}
	}
	return float64(w.sampled) / 1024, "largest VmRSS sampled every 20 ms"
}

// giantRSS puts size bytes through `tarn put -` from a pipe and gets them
// back through `tarn get CAP -`, hashing both ends, and records the client
// node's peak RSS during each (and their rates: no disk involved).
func giantRSS(ctx context.Context, r *Report, g *devGrid, size int64) error {
	name := sizeName(size)
	var plugins []int
	if st, err := g.api.status(ctx); err == nil {
		for _, p := range st.Plugins {
			if p.Pid > 0 {
				plugins = append(plugins, p.Pid)
			}
		}
	}
	// watch starts watching the client node and its plugin processes;
	// the function it returns gives the node's peak, how it was measured,
	// and the sum of the plugins' peaks.
	watch := func() func() (float64, string, float64) {
		node := watchPeak(g.pid)
		var ps []*peakWatch
		for _, pid := range plugins {
			ps = append(ps, watchPeak(pid))
		}
		return func() (float64, string, float64) {
			peak, how := node.end()
			sum := 0.0
			for _, p := range ps {
				v, _ := p.end()
				sum += v
			}
			return peak, how, sum
		}
	}
	src := io.LimitReader(rand.NewChaCha8([32]byte{4, 'g'}), size)
	h := sha256.New()
	end := watch()
	t0 := time.Now()
	c, err := g.putCap(ctx, io.TeeReader(src, h), "-")
	put := time.Since(t0)
	peakPut, how, plugPut := end()
	if err != nil {
		return err
	}
	want := h.Sum(nil)
	got := sha256.New()
	cnt := &countWriter{w: got}
	end = watch()
	t1 := time.Now()
	_, err = g.cli(ctx, nil, cnt, "get", c, "-")
	get := time.Since(t1)
	peakGet, _, plugGet := end()
	if err != nil {
		return err
	}
	if cnt.n != size || !bytes.Equal(got.Sum(nil), want) {
		return fmt.Errorf("tarn get of the %s file returned other bytes than were put (%d bytes)", name, cnt.n)
	}
	plugNote := fmt.Sprintf("sum of the peaks of the client's %d plugin processes", len(plugins))
	r.add(Figure{Key: "e2e.rss.client.put." + name, Name: "client node peak RSS during tarn put " + name, Value: peakPut, Unit: "MiB", Note: how})
	r.add(Figure{Key: "e2e.rss.client.get." + name, Name: "client node peak RSS during tarn get " + name, Value: peakGet, Unit: "MiB", Note: how})
	r.add(Figure{Key: "e2e.rss.plugins.put." + name, Name: "client plugins' peak RSS during tarn put " + name, Value: plugPut, Unit: "MiB", Note: plugNote})
	r.add(Figure{Key: "e2e.rss.plugins.get." + name, Name: "client plugins' peak RSS during tarn get " + name, Value: plugGet, Unit: "MiB", Note: plugNote})
	addVsPipeline(r, Figure{Key: "e2e.cli.put." + name + ".pipe", Name: "tarn put " + name + " from a pipe", Value: mbps(size, put), Unit: "MB/s"})
	addVsPipeline(r, Figure{Key: "e2e.cli.get." + name + ".pipe", Name: "tarn get " + name + " to a pipe", Value: mbps(size, get), Unit: "MB/s"})
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
