//go:build acceptance

package acceptance

// Processes: starting tarn as real child processes, reading /proc, and
// making sure that nothing a test started outlives it.
//
// The test binary makes itself a child subreaper (PR_SET_CHILD_SUBREAPER),
// so a process orphaned by a killed node (a plugin, a node of `tarn dev`)
// is re-parented to the test binary rather than to init. Every process the
// suite ever caused is therefore a descendant of the test binary, and the
// sweep at the end of TestMain kills whatever is left.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// managed holds the pids of the exec.Cmds the harness waits for itself;
// the reaper leaves those alone.
var managed struct {
	sync.Mutex
	pids map[int]bool
}

func manage(pid int, on bool) {
	managed.Lock()
	defer managed.Unlock()
	if managed.pids == nil {
		managed.pids = map[int]bool{}
	}
	if on {
		managed.pids[pid] = true
	} else {
		delete(managed.pids, pid)
	}
}

func isManaged(pid int) bool {
	managed.Lock()
	defer managed.Unlock()
	return managed.pids[pid]
}

// startReaper makes the test binary a subreaper and reaps the orphans that
// are re-parented to it (zombies that no exec.Cmd waits for).
func startReaper() (stop func()) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "acceptance: cannot become a subreaper (%v): orphans go to init\n", err)
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				reapOrphans()
			}
		}
	}()
	return func() { close(done) }
}

// zombieSince notes when the reaper first saw each zombie child. A child
// that an exec.Cmd waits for is a zombie only until its Wait collects it —
// on a loaded machine that can take a while — so only a zombie left for
// orphanGrace is taken for an orphan: reaping a child that a test's
// exec.Cmd is about to wait for makes that Wait fail ("waitid: no child
// processes"), even for commands the harness does not know of.
var (
	zombieMu    sync.Mutex
	zombieSince = map[procKey]time.Time{}
)

type procKey struct {
	pid   int
	start uint64
}

const orphanGrace = 5 * time.Second

func reapOrphans() {
	zombieMu.Lock()
	defer zombieMu.Unlock()
	me := os.Getpid()
	now := time.Now()
	seen := map[procKey]bool{}
	for _, p := range allProcs() {
		if p.PPid != me || p.State != 'Z' || isManaged(p.Pid) {
			continue
		}
		k := procKey{p.Pid, p.Start}
		seen[k] = true
		first, ok := zombieSince[k]
		if !ok {
			zombieSince[k] = now
			continue
		}
		if now.Sub(first) >= orphanGrace {
			var ws unix.WaitStatus
			unix.Wait4(p.Pid, &ws, unix.WNOHANG, nil)
		}
	}
	for k := range zombieSince {
		if !seen[k] {
			delete(zombieSince, k)
		}
	}
}

// procInfo is what the harness reads of a process from /proc.
type procInfo struct {
	Pid, PPid, PGid int
	State           byte
	Start           uint64 // start time in clock ticks since boot
	Cmdline         []string
}

func (p procInfo) String() string {
	return fmt.Sprintf("pid %d (ppid %d, %c) %s", p.Pid, p.PPid, p.State, strings.Join(p.Cmdline, " "))
}

// readProc reads /proc/PID/stat and cmdline.
func readProc(pid int) (procInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, err
	}
	// The command name is in parentheses and may hold spaces or ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	p := procInfo{Pid: pid, State: f[0][0]}
	p.PPid, _ = strconv.Atoi(f[1])
	p.PGid, _ = strconv.Atoi(f[2])
	p.Start, _ = strconv.ParseUint(f[19], 10, 64)
	if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		for _, a := range bytes.Split(bytes.TrimRight(c, "\x00"), []byte{0}) {
			p.Cmdline = append(p.Cmdline, string(a))
		}
	}
	return p, nil
}

func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// children are the live (not zombie) processes whose parent is pid.
func children(pid int) []procInfo {
	var out []procInfo
	for _, p := range allProcs() {
		if p.PPid == pid && p.State != 'Z' && p.State != 'X' {
			out = append(out, p)
		}
	}
	return out
}

// descendants are every live process below root.
func descendants(root int) []procInfo {
	all := allProcs()
	kids := map[int][]procInfo{}
	for _, p := range all {
		kids[p.PPid] = append(kids[p.PPid], p)
	}
	var out []procInfo
	var walk func(int)
	walk = func(pid int) {
		for _, c := range kids[pid] {
			if c.State != 'Z' && c.State != 'X' {
				out = append(out, c)
			}
			walk(c.Pid)
		}
	}
	walk(root)
	return out
}

// alive says whether pid is a running (or stopped) process, not a zombie.
func alive(pid int) bool {
	p, err := readProc(pid)
	return err == nil && p.State != 'Z' && p.State != 'X'
}

// sameProc says whether p still names the same process (pid not reused).
func sameProc(p procInfo) bool {
	q, err := readProc(p.Pid)
	return err == nil && q.Start == p.Start && q.State != 'Z' && q.State != 'X'
}

// killAll sends SIGKILL to each process that is still the one recorded.
func killAll(ps []procInfo) {
	for _, p := range ps {
		if p.Pid > 1 && p.Pid != os.Getpid() && sameProc(p) {
			syscall.Kill(p.Pid, syscall.SIGCONT) // a stopped process dies as well, but be sure
			syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}
}

// waitGone waits until none of pids is alive, or d passes; it returns the
// pids still alive.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sweep kills every descendant of the test binary: the last line of
// defence against a leaked process.
func sweep() []procInfo {
	left := descendants(os.Getpid())
	killAll(left)
	time.Sleep(200 * time.Millisecond)
	reapOrphans()
	return left
}

// Proc is a long-running tarn process the harness started (tarn dev, tarn
// run), in its own process group, with its output in a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of the file holding its stdout and stderr
	done chan struct{}
	err  error
}

// startProc starts tarn with args; its output goes to logPath. It is
// stopped (SIGINT to its group, then SIGKILL to everything below it) when
// the test ends, pass or fail.
func startProc(t testing.TB, name, logPath string, args ...string) *Proc {
	t.Helper()
	return startProcOwned(t, t, name, logPath, args...)
}

// startProcOwned is startProc with the process stopped when owner ends
// (a grid's test), not t (which may be a subtest).
func startProcOwned(t, owner testing.TB, name, logPath string, args ...string) *Proc {
	t.Helper()
	return launch(t, owner, name, logPath, nil, args)
}

// launch starts tarn ARGS behind the command prefix (`ip netns exec NS`,
// which execs tarn in place, so the pid is tarn's) when one is given, in
// its own process group, with its output appended to logPath; owner's end
// stops it.
func launch(t, owner testing.TB, name, logPath string, prefix, args []string) *Proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	argv := append(append(append([]string{}, prefix...), tarnBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = tarnEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %s: %v", name, strings.Join(argv, " "), err)
	}
	f.Close()
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	manage(cmd.Process.Pid, true)
	go func() {
		p.err = cmd.Wait()
		manage(cmd.Process.Pid, false)
		close(p.done)
	}()
	owner.Cleanup(func() { p.Stop(owner, 15*time.Second) })
	return p
}

// Pid of the process.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited says whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to end and returns its error.
func (p *Proc) Wait(d time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Stop asks the process group to stop as Ctrl-C does (SIGINT), waits up to
// grace, then kills every process that was below it. It returns the
// processes that had to be killed.
func (p *Proc) Stop(t testing.TB, grace time.Duration) []procInfo {
	below := descendants(p.Pid())
	if !p.Exited() {
		syscall.Kill(-p.Pid(), syscall.SIGCONT)
		syscall.Kill(-p.Pid(), syscall.SIGINT)
		if _, ok := p.Wait(grace); !ok {
			t.Logf("%s (pid %d) did not stop within %v of SIGINT: killing it", p.Name, p.Pid(), grace)
			syscall.Kill(-p.Pid(), syscall.SIGKILL)
			p.Wait(5 * time.Second)
		}
	}
	// Whatever was below it and is still there is a leak: kill it.
	var leaked []procInfo
	for _, q := range below {
		if sameProc(q) {
			leaked = append(leaked, q)
		}
	}
	if len(waitGone(pidsOf(leaked), 3*time.Second)) > 0 {
		killAll(leaked)
		return leaked
	}
	return nil
}

func pidsOf(ps []procInfo) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.Pid
	}
	return out
}

// tarnEnv is the environment of every tarn process: no TARN_NODE from the
// caller, so that a test never touches a real node by accident.
func tarnEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TARN_NODE=") {
			env = append(env, e)
		}
	}
	return env
}

// Result is one finished CLI command.
type Result struct {
	Args           []string
	Stdout, Stderr string
	Code           int // exit status; -1 when it did not exit normally
	Err            error
	Took           time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("tarn %s: exit %d (%v) in %v\nstdout: %s\nstderr: %s",
		strings.Join(r.Args, " "), r.Code, r.Err, r.Took.Round(time.Millisecond), clip(r.Stdout), clip(r.Stderr))
}

func clip(s string) string {
	if len(s) > 4000 {
		return s[:2000] + "\n...\n" + s[len(s)-2000:]
	}
	return s
}

// CLI options of one command.
type CLI struct {
	Stdin   io.Reader
	Stdout  io.Writer // default: captured in Result.Stdout
	Timeout time.Duration
}

// tarn runs one CLI command to its end (or until the timeout, default 2
// minutes, when it is killed).
func tarn(t testing.TB, o CLI, args ...string) Result {
	t.Helper()
	return runCLI(o, nil, args)
}

// runCLI runs tarn ARGS, behind the command prefix (`ip netns exec NS`, say)
// when one is given, in its own process group that the timeout kills whole.
func runCLI(o CLI, prefix, args []string) Result {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	argv := append(append(append([]string{}, prefix...), tarnBin), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = tarnEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdin = o.Stdin
	cmd.Stdout = &out
	if o.Stdout != nil {
		cmd.Stdout = o.Stdout
	}
	cmd.Stderr = &errb
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		manage(cmd.Process.Pid, true)
		err = cmd.Wait()
		manage(cmd.Process.Pid, false)
	}
	r := Result{Args: args, Stdout: out.String(), Stderr: errb.String(), Err: err, Took: time.Since(start), Code: -1}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		r.Err = fmt.Errorf("killed after %v: %w", o.Timeout, ctx.Err())
	}
	return r
}

// mustTarn runs a command that must succeed.
func mustTarn(t testing.TB, o CLI, args ...string) Result {
	t.Helper()
	r := tarn(t, o, args...)
	if r.Code != 0 || r.Err != nil {
		t.Fatalf("%v", r)
	}
	return r
}

// vmKB reads a "VmXXX:  N kB" line of /proc/PID/status, in KiB.
func vmKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// resetPeakRSS makes VmHWM start again from the current RSS (clear_refs 5).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// findFiles lists regular files below root whose path ends in a name
// matched by keep.
func findFiles(root string, keep func(rel string) bool) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			if keep(rel) {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

func syscallStop(pid int) { syscall.Kill(pid, syscall.SIGSTOP) }
func syscallCont(pid int) { syscall.Kill(pid, syscall.SIGCONT) }
