//go:build unix

package storagedisk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/storage/storagetest"
)

// envServe makes the test binary serve the disk backend as a plugin.
const envServe = "TARN_TEST_SERVE_STORAGE_DISK"

func TestMain(m *testing.M) {
	if os.Getenv(envServe) == "1" {
		Serve()
		os.Exit(0)
	}
	if dir := os.Getenv(envHost); dir != "" {
		hostMain(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func pluginCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServe+"=1")
	return cmd
}

func settings(t testing.TB, dir string) []byte {
	b, err := json.Marshal(Settings{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// path is how share bytes travel from host to plugin.
type path struct {
	name  string
	fast  bool // shared-memory arena and fd channel offered
	files bool // the host pwrites the share files the plugin hands it
}

var paths = []path{{"files", true, true}, {"arena", true, false}, {"fallback", false, false}}

// startPath starts the plugin on dir with the data path p, and checks it
// is the one in use.
func startPath(t *testing.T, p path, dir string) (*storage.Client, *pluginkit.Process) {
	t.Helper()
	c, proc := storagetest.StartPlugin(t, pluginCmd(), p.fast, settings(t, dir))
	if c.Files() != p.fast {
		t.Fatalf("plugin hands files = %v, want %v (fast path %v)", c.Files(), p.fast, p.fast)
	}
	c.UseFiles(p.files)
	return c, proc
}

func TestPluginConformance(t *testing.T) {
	for _, tc := range paths {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Backend {
				c, _ := startPath(t, tc, t.TempDir())
				return c
			})
		})
	}
}

// TestPluginConfigure: calls before Configure are refused with a clear
// error; bad settings are refused; the same folder again is accepted (a
// host re-configures after every restart), another one is not.
func TestPluginConfigure(t *testing.T) {
	c, _ := storagetest.StartPlugin(t, pluginCmd(), true, nil)
	ctx := context.Background()
	if _, err := c.Stat(ctx, storage.Ref{}); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("stat before configure: %v, want a 'not configured' error", err)
	}
	if _, err := c.Create(ctx, storage.Ref{}, 1); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("create before configure: %v, want a 'not configured' error", err)
	}
	for _, bad := range []string{`{}`, `{"path":"/x","extra":1}`, `nonsense`} {
		if err := c.Configure(ctx, []byte(bad)); err == nil {
			t.Fatalf("settings %s accepted", bad)
		}
	}
	dir := t.TempDir()
	if err := c.Configure(ctx, settings(t, dir)); err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(ctx, settings(t, dir)); err != nil {
		t.Fatalf("configure again with the same folder: %v", err)
	}
	if err := c.Configure(ctx, settings(t, t.TempDir())); err == nil {
		t.Fatal("configure with another folder accepted")
	}
	if _, err := c.Stat(ctx, storage.Ref{}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat after configure: %v, want ErrNotFound", err)
	}
}

// TestPluginAbortsOnDetach: writers the host leaves open are aborted when
// its connection ends, so their temp files go at once.
func TestPluginAbortsOnDetach(t *testing.T) {
	dir := t.TempDir()
	c, _ := storagetest.StartPlugin(t, pluginCmd(), true, settings(t, dir))
	ctx := context.Background()
	w, err := c.Create(ctx, storage.Ref{Num: 1}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(ctx, make([]byte, 500), 0); err != nil {
		t.Fatal(err)
	}
	if n := countTmp(t, dir); n != 1 {
		t.Fatalf("%d temp files while writing, want 1", n)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for countTmp(t, dir) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("temp file of an open writer still there after the host detached")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countTmp(t *testing.T, dir string) int {
	ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// killRef and killData name and fill share i of writer g in the kill test.
func killRef(g, i int) storage.Ref {
	var r storage.Ref
	binary.BigEndian.PutUint32(r.Index[:], uint32(g))
	binary.BigEndian.PutUint32(r.Index[4:], uint32(i))
	r.Num = uint32(i % 10)
	return r
}

func killData(g, i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(g), uint64(i)))
	b := make([]byte, 64<<10+int(rng.Uint32()%(192<<10)))
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return b
}

// TestPluginKill9 kills the plugin process with SIGKILL while writers are
// busy. The calls in flight must fail (not hang); a new process on the
// same folder must show every share whose Seal returned, intact, and no
// share whose Seal was never called.
func TestPluginKill9(t *testing.T) {
	for _, tc := range paths {
		t.Run(tc.name, func(t *testing.T) { testKill9(t, tc, false) })
	}
	for _, tc := range paths[1:] {
		t.Run("put "+tc.name, func(t *testing.T) { testKill9(t, tc, true) })
	}
}

func testKill9(t *testing.T, path path, put bool) {
	dir := t.TempDir()
	c, p := startPath(t, path, dir)
	const writers = 4
	var (
		mu       sync.Mutex
		sealed   = map[[2]int]bool{} // Seal returned nil
		sealing  = map[[2]int]bool{} // Seal was called; outcome unknown if it errored
		lastErr  = make([]error, writers)
		attempts = make([]int, writers)
		wg       sync.WaitGroup
	)
	ctx := context.Background()
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				attempts[g] = i + 1
				r, data := killRef(g, i), killData(g, i)
				if put {
					mu.Lock()
					sealing[[2]int{g, i}] = true
					mu.Unlock()
					if err := c.Put(ctx, r, data); err != nil {
						lastErr[g] = err
						return
					}
					mu.Lock()
					sealed[[2]int{g, i}] = true
					mu.Unlock()
					continue
				}
				w, err := c.Create(ctx, r, int64(len(data)))
				for off := 0; err == nil && off < len(data); off += 32 << 10 {
					err = w.WriteAt(ctx, data[off:min(off+32<<10, len(data))], int64(off))
				}
				if err == nil {
					mu.Lock()
					sealing[[2]int{g, i}] = true
					mu.Unlock()
					err = w.Seal(ctx)
				}
				if err != nil {
					lastErr[g] = err
					return
				}
				mu.Lock()
				sealed[[2]int{g, i}] = true
				mu.Unlock()
			}
		}()
	}
	// Let some shares be sealed, then kill in the middle of the work.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(sealed)
		mu.Unlock()
		if n >= 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d shares sealed in 60s", n)
		}
	}
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("calls in flight at the kill hung")
	}
	for g, err := range lastErr {
		if err == nil {
			t.Errorf("writer %d: no error after the kill", g)
		}
	}
	t.Logf("sealed %d shares before the kill; last error: %v", len(sealed), lastErr[0])

	c2, _ := startPath(t, path, dir)
	if n := countTmp(t, dir); n != 0 {
		t.Errorf("%d temp files left after a restart", n)
	}
	for g := range writers {
		for i := range attempts[g] {
			r := killRef(g, i)
			nums, err := c2.List(ctx, r.Index)
			if err != nil {
				t.Fatal(err)
			}
			key := [2]int{g, i}
			visible := len(nums) == 1 && nums[0] == r.Num
			switch {
			case sealed[key] && !visible:
				t.Errorf("share %d/%d sealed before the kill is gone (list %v)", g, i, nums)
			case !sealing[key] && len(nums) != 0:
				t.Errorf("share %d/%d never sealed is visible (list %v)", g, i, nums)
			case len(nums) > 1 || (len(nums) == 1 && !visible):
				t.Errorf("share %d/%d: list %v", g, i, nums)
			}
			if !visible {
				continue
			}
			want := killData(g, i)
			got := make([]byte, len(want)+1)
			n, err := c2.ReadAt(ctx, r, got, 0)
			if n != len(want) || !bytes.Equal(got[:n], want) || err == nil {
				t.Errorf("share %d/%d reads back %d bytes (want %d), equal=%v, err=%v",
					g, i, n, len(want), bytes.Equal(got[:n], want), err)
			}
		}
	}
	if t.Failed() {
		t.Log(fmt.Sprintf("folder %s", dir))
	}
}

// openFds returns how many descriptors the process pid has open, and how
// many of them name a file under dir (deleted ones too).
func openFds(t *testing.T, pid int, dir string) (all, under int) {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		all++
		if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(l, dir) {
			under++
		}
	}
	return all, under
}

// TestPluginFilesNoLeak: on the handed-files path, every share file the
// plugin hands over is closed again by Seal or Abort, in the host and in
// the plugin, and a sealed writer's file is never written again.
func TestPluginFilesNoLeak(t *testing.T) {
	dir := t.TempDir()
	c, p := startPath(t, paths[0], dir)
	ctx := context.Background()
	data := bytes.Repeat([]byte("tarn"), 100<<10)
	cycle := func(i int, seal bool) {
		r := storage.Ref{Num: uint32(i)}
		r.Index[0], r.Index[1] = 0xfd, byte(i)
		w, err := c.Create(ctx, r, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, under := openFds(t, os.Getpid(), dir); under != 1 {
			t.Fatalf("host holds %d files of the folder with one writer open, want 1 (handed file)", under)
		}
		if err := w.WriteAt(ctx, data, 0); err != nil {
			t.Fatal(err)
		}
		if seal {
			err = w.Seal(ctx)
		} else {
			err = w.Abort(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteAt(ctx, data[:1], 0); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("write after the end: %v, want ErrClosed", err)
		}
	}
	cycle(0, true) // the first one opens the share folders' caches etc.
	hostBefore, _ := openFds(t, os.Getpid(), dir)
	plugBefore, _ := openFds(t, p.Pid, dir)
	for i := 1; i <= 20; i++ {
		cycle(i, i%3 != 0)
	}
	// Reads of sealed shares through handed files (Open), and refused
	// opens of aborted ones, leave nothing open either.
	for i := 1; i <= 20; i++ {
		r := storage.Ref{Num: uint32(i)}
		r.Index[0], r.Index[1] = 0xfd, byte(i)
		f, size, err := c.Open(ctx, r)
		if i%3 == 0 {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("open of aborted share %d: %v, want ErrNotFound", i, err)
			}
			continue
		}
		if err != nil || size != int64(len(data)) {
			t.Fatalf("open of sealed share %d: size %d, %v", i, size, err)
		}
		got := make([]byte, len(data))
		if n, err := f.ReadAt(got, 0); n != len(data) || !bytes.Equal(got, data) {
			t.Fatalf("read of sealed share %d through its file: %d bytes, %v", i, n, err)
		}
		f.Close()
	}
	hostAfter, hostUnder := openFds(t, os.Getpid(), dir)
	plugAfter, _ := openFds(t, p.Pid, dir)
	if hostAfter != hostBefore || hostUnder != 0 {
		t.Errorf("host fds %d before, %d after 20 writers and reads (%d in the folder)", hostBefore, hostAfter, hostUnder)
	}
	if plugAfter != plugBefore {
		t.Errorf("plugin fds %d before, %d after 20 writers", plugBefore, plugAfter)
	}
	for i := 1; i <= 20; i++ {
		r := storage.Ref{Num: uint32(i)}
		r.Index[0], r.Index[1] = 0xfd, byte(i)
		got := make([]byte, len(data))
		n, err := c.ReadAt(ctx, r, got, 0)
		switch {
		case i%3 == 0 && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("aborted share %d: read %d bytes, %v", i, n, err)
		case i%3 != 0 && (err != nil || !bytes.Equal(got, data)):
			t.Errorf("sealed share %d: read %d bytes, %v", i, n, err)
		}
	}
}

// TestPluginFilesClosed: once the host closes its client (detaches), a
// writer on a handed file refuses to write (the plugin aborts it), and
// Abort still closes the file.
func TestPluginFilesClosed(t *testing.T) {
	dir := t.TempDir()
	c, _ := startPath(t, paths[0], dir)
	ctx := context.Background()
	w, err := c.Create(ctx, storage.Ref{Num: 7}, 100)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := w.WriteAt(ctx, []byte("late"), 0); !errors.Is(err, storage.ErrPluginGone) || !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrPluginGone and ErrClosed", err)
	}
	w.Abort(ctx)
	if _, under := openFds(t, os.Getpid(), dir); under != 0 {
		t.Errorf("host still holds %d files of the folder", under)
	}
}

// TestPluginFilesKilled: when the plugin dies with writers open on handed
// files, the host's writes fail with one line saying so (ErrClosed), not
// into a file nobody will seal, and Abort closes the files.
func TestPluginFilesKilled(t *testing.T) {
	dir := t.TempDir()
	c, p := startPath(t, paths[0], dir)
	ctx := context.Background()
	var ws []storage.Writer
	for i := range 3 {
		r := storage.Ref{Num: uint32(i)}
		r.Index[0] = 0xdd
		w, err := c.Create(ctx, r, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteAt(ctx, []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if _, under := openFds(t, os.Getpid(), dir); under != 3 {
		t.Fatalf("host holds %d files of the folder, want 3", under)
	}
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = ws[0].WriteAt(ctx, []byte("after"), 0); err != nil {
			break
		}
	}
	if !errors.Is(err, storage.ErrClosed) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "plugin process went away") {
		t.Fatalf("write after the plugin died: %v, want one line wrapping ErrClosed", err)
	}
	t.Logf("write after the kill: %v", err)
	for _, w := range ws {
		if err := w.Seal(ctx); err == nil {
			t.Error("seal after the plugin died succeeded")
		}
	}
	if _, under := openFds(t, os.Getpid(), dir); under != 0 {
		t.Errorf("host still holds %d files of the folder after Seal failed", under)
	}
}

// envHost makes the test binary act as a storage node for the host kill
// test: it starts the disk plugin on the folder with handed files and
// writes shares until it is killed.
const envHost = "TARN_TEST_STORAGE_DISK_HOST"

// hostMain writes killData(0, i) as killRef(0, i) for i = 0, 1, ... with
// the host pwriting the plugin's handed files, and prints "sealed i" once
// each Seal has returned.
func hostMain(dir string) {
	p, err := pluginkit.Start(pluginkit.StartOptions{Kind: pluginkit.KindStorage, Version: storage.ProtocolVersion,
		Name: "disk", Cmd: pluginCmd(), FastPath: true, NewPlugin: storage.NewHostPlugin})
	if err != nil {
		fmt.Println("error", err)
		return
	}
	c := p.Raw.(*storage.Client)
	ctx := context.Background()
	if err := c.Configure(ctx, []byte(`{"path":"`+dir+`"}`)); err != nil || !c.Files() {
		fmt.Println("error", err, c.Files())
		return
	}
	fmt.Println("plugin", p.Pid)
	for i := 0; ; i++ {
		data := killData(0, i)
		w, err := c.Create(ctx, killRef(0, i), int64(len(data)))
		for off := 0; err == nil && off < len(data); off += 32 << 10 {
			err = w.WriteAt(ctx, data[off:min(off+32<<10, len(data))], int64(off))
		}
		if err == nil {
			err = w.Seal(ctx)
		}
		if err != nil {
			fmt.Println("error", err)
			return
		}
		fmt.Println("sealed", i)
	}
}

// TestHostKill9 kills the storage node (the host process) with SIGKILL
// while it writes shares through handed files: its plugin dies with it; a
// new plugin on the folder has every share whose Seal returned, byte for
// byte, no partial share, and an empty tmp/.
func TestHostKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHost+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	plugin, sealed := 0, -1
	timeout := time.After(60 * time.Second)
	for sealed < 20 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("host exited early")
			}
			if strings.HasPrefix(l, "error") {
				t.Fatalf("host: %s", l)
			}
			fmt.Sscanf(l, "plugin %d", &plugin)
			fmt.Sscanf(l, "sealed %d", &sealed)
		case <-timeout:
			t.Fatalf("only %d shares sealed in 60s", sealed+1)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		fmt.Sscanf(l, "sealed %d", &sealed) // printed before the kill landed
	}
	cmd.Wait()
	// The plugin dies with its host (Pdeathsig); wait until it has.
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(plugin, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d outlived its killed host", plugin)
		}
	}
	c, _ := startPath(t, paths[0], dir)
	if n := countTmp(t, dir); n != 0 {
		t.Errorf("%d temp files left after a restart", n)
	}
	ctx := context.Background()
	for i := 0; i <= sealed+1; i++ {
		r := killRef(0, i)
		nums, err := c.List(ctx, r.Index)
		if err != nil {
			t.Fatal(err)
		}
		if len(nums) == 0 {
			if i <= sealed {
				t.Errorf("share %d sealed before the kill is gone", i)
			}
			continue
		}
		want := killData(0, i)
		got := make([]byte, len(want)+1)
		if n, err := c.ReadAt(ctx, r, got, 0); n != len(want) || !bytes.Equal(got[:n], want) || err == nil {
			t.Errorf("share %d reads back %d bytes (want %d), equal=%v, err=%v", i, n, len(want), bytes.Equal(got[:n], want), err)
		}
	}
	t.Logf("killed the host after %d sealed shares", sealed+1)
}

// TestPluginPacked: through a real plugin process, small shares put in one
// call are packed (no share file), read back by ReadAt and by the file
// Open hands over (a sealed memfd, on the paths that pass descriptors),
// listed, stat'ed and deleted; a plugin started with "pack": false gives
// new shares files of their own and still serves the packed ones.
func TestPluginPacked(t *testing.T) {
	for _, tc := range paths {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			c, p := startPath(t, tc, dir)
			refs := []storage.Ref{killRef(7, 0), killRef(7, 1), killRef(7, 2)}
			for i, r := range refs {
				if err := c.Put(ctx, r, killData(7, i)); err != nil {
					t.Fatal(err)
				}
			}
			if n := shareFiles(t, dir); n != 0 {
				t.Fatalf("%d share files after small puts, want 0 (packed)", n)
			}
			for i, r := range refs {
				want := killData(7, i)
				got := make([]byte, len(want))
				if n, err := c.ReadAt(ctx, r, got, 0); n != len(want) || (err != nil && err != io.EOF) || !bytes.Equal(got, want) {
					t.Fatalf("read %s: %d bytes, %v", r, n, err)
				}
				if size, err := c.Stat(ctx, r); err != nil || size != int64(len(want)) {
					t.Fatalf("stat %s: %d, %v", r, size, err)
				}
				f, size, err := c.Open(ctx, r)
				if errors.Is(err, errors.ErrUnsupported) && !tc.files {
					continue // no descriptors on this path
				}
				if err != nil || size != int64(len(want)) {
					t.Fatalf("open %s: %d, %v", r, size, err)
				}
				all := make([]byte, size)
				n, err := f.ReadAt(all, 0)
				f.Close()
				if n != len(want) || !bytes.Equal(all, want) {
					t.Fatalf("handed file of %s: %d bytes, %v", r, n, err)
				}
			}
			if err := c.Delete(ctx, refs[1]); err != nil {
				t.Fatal(err)
			}
			if nums, err := c.List(ctx, refs[1].Index); err != nil || len(nums) != 0 {
				t.Fatalf("list after delete: %v, %v", nums, err)
			}
			p.Kill()

			off := false
			set, _ := json.Marshal(Settings{Path: dir, Pack: &off})
			c2, _ := storagetest.StartPlugin(t, pluginCmd(), tc.fast, set)
			c2.UseFiles(tc.files)
			extra := killRef(7, 3)
			if err := c2.Put(ctx, extra, []byte("own file")); err != nil {
				t.Fatal(err)
			}
			if n := shareFiles(t, dir); n != 1 {
				t.Fatalf("%d share files with pack off, want 1", n)
			}
			for _, i := range []int{0, 2} {
				want := killData(7, i)
				got := make([]byte, len(want))
				if n, err := c2.ReadAt(ctx, refs[i], got, 0); n != len(want) || !bytes.Equal(got, want) {
					t.Fatalf("packed share %d with pack off: %d bytes, %v", i, n, err)
				}
			}
			if nums, _ := c2.List(ctx, refs[1].Index); len(nums) != 0 {
				t.Fatalf("deleted share back after restart: %v", nums)
			}
		})
	}
}
