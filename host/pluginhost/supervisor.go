package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// kindDef is what the host needs to know of a kind's RPC layer.
type kindDef struct {
	version   uint
	newPlugin func(pluginkit.HostDataPlane) plugin.Plugin
	// check asserts that a dispensed client is the kind's interface.
	check func(raw any) error
	// version of the plugin itself, from its Info.
	info func(ctx context.Context, raw any) (string, error)
	// release frees what the client holds (streams); may be nil.
	release func(raw any)
}

// kinds is filled by the kind_*.go files.
var kinds = map[pluginkit.Kind]kindDef{}

// sentinels are the kinds' errors that a live plugin answers with; an error
// wrapping one needs no check of whether the process died. Filled by the
// kind_*.go files.
var sentinels = []error{context.Canceled, context.DeadlineExceeded}

func isKindSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// proc is one started plugin process.
type proc struct {
	p       *pluginkit.Process
	raw     any
	gen     uint64
	started time.Time
	version string
	cancel  context.CancelFunc // kills the process (exec.CommandContext)
	exited  chan struct{}      // closed once the process has ended

	inflight sync.WaitGroup
}

func (p *proc) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return p.p.Exited()
	}
}

// supervisor owns the processes of one plugin, one at a time.
type supervisor struct {
	h     *Host
	spec  Spec
	def   kindDef
	log   hclog.Logger
	start chan func() // run on the locked thread, see startThread

	mu        sync.Mutex
	cur       *proc
	gen       uint64
	starting  chan struct{} // closed when the start under way ends
	failures  int           // consecutive failed or short-lived starts
	nextStart time.Time
	restarts  int
	lastErr   error
	lastPid   int
	lastStart time.Time
	closed    bool
	done      chan struct{}
}

func newSupervisor(h *Host, s Spec) *supervisor {
	sup := &supervisor{
		h:     h,
		spec:  s,
		def:   kinds[s.Kind],
		log:   fixedName{h.opts.Logger.Named(string(s.Kind)).Named(s.DisplayName())},
		start: make(chan func()),
		done:  make(chan struct{}),
	}
	go sup.startThread()
	return sup
}

// startThread runs every start of this plugin on one OS thread that lives
// as long as the supervisor. Pdeathsig (set by pluginkit.Start) fires when
// the *thread* that forked the child exits, not the process; the Go runtime
// may end a thread whose goroutine exits while locked, so a child forked
// from an arbitrary goroutine could be killed at a random later moment. This
// goroutine locks its thread and never unlocks it: the thread ends only when
// the supervisor is closed, which is when its children should die anyway.
func (s *supervisor) startThread() {
	runtime.LockOSThread()
	for {
		select {
		case f := <-s.start:
			f()
		case <-s.done:
			return
		}
	}
}

// fixedName keeps plugin log lines under "KIND.NAME": go-plugin would add
// the binary's base name (every built-in plugin is "tarn"), and it passes
// on the plugin's own "@module" field as a plain field, which in a JSON
// log would be a second "@module" key beside the node's.
type fixedName struct{ hclog.Logger }

func (l fixedName) Named(string) hclog.Logger      { return l }
func (l fixedName) ResetNamed(string) hclog.Logger { return l }

func (l fixedName) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, withoutModule(args)...)
}
func (l fixedName) Trace(msg string, args ...any) { l.Logger.Trace(msg, withoutModule(args)...) }
func (l fixedName) Debug(msg string, args ...any) { l.Logger.Debug(msg, withoutModule(args)...) }
func (l fixedName) Info(msg string, args ...any)  { l.Logger.Info(msg, withoutModule(args)...) }
func (l fixedName) Warn(msg string, args ...any)  { l.Logger.Warn(msg, withoutModule(args)...) }
func (l fixedName) Error(msg string, args ...any) { l.Logger.Error(msg, withoutModule(args)...) }

// withoutModule drops an "@module" key and its value from hclog's
// key/value arguments.
func withoutModule(args []any) []any {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "@module" {
			out := append(append(make([]any, 0, len(args)-2), args[:i]...), args[i+2:]...)
			return withoutModule(out)
		}
	}
	return args
}

// backoff is the wait before the next start after n consecutive failures.
func (s *supervisor) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := s.h.opts.BackoffMin
	for i := 1; i < n && d < s.h.opts.BackoffMax; i++ {
		d *= 2
	}
	return min(d, s.h.opts.BackoffMax)
}

// get returns the running process, starting one when there is none. The
// caller must call release(p) when its call ends.
func (s *supervisor) get(ctx context.Context) (*proc, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", s.spec.Label(), ErrClosed)
		}
		if s.cur != nil && !s.cur.dead() {
			p := s.cur
			p.inflight.Add(1)
			s.mu.Unlock()
			return p, nil
		}
		if s.cur != nil {
			s.reapLocked()
		}
		if ch := s.starting; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				// A start failed: surface its error rather than start again.
				s.mu.Lock()
				cur, err := s.cur, s.lastErr
				s.mu.Unlock()
				if cur == nil && err != nil {
					return nil, err
				}
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: waiting for its start: %w", s.spec.Label(), ctx.Err())
			}
		}
		if wait := time.Until(s.nextStart); wait > 0 {
			last := s.lastErr
			s.mu.Unlock()
			dl, hasDL := ctx.Deadline()
			if wait > s.h.opts.MaxCallWait || (hasDL && time.Until(dl) < wait) {
				return nil, fmt.Errorf("%s: %w, next start in %s: %w", s.spec.Label(), ErrPluginDown, wait.Round(time.Millisecond), last)
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%s: waiting to restart: %w", s.spec.Label(), ctx.Err())
			}
			continue
		}
		ch := make(chan struct{})
		s.starting = ch
		s.mu.Unlock()

		p, err := s.launch(ctx)

		s.mu.Lock()
		s.starting = nil
		close(ch)
		if err != nil {
			s.failures++
			s.nextStart = time.Now().Add(s.backoff(s.failures))
			s.lastErr = err
			s.mu.Unlock()
			s.log.Error("plugin failed to start", "error", err, "failures", s.failures)
			return nil, err
		}
		if s.closed {
			s.mu.Unlock()
			s.kill(p)
			return nil, fmt.Errorf("%s: %w", s.spec.Label(), ErrClosed)
		}
		s.gen++
		p.gen = s.gen
		if s.gen > 1 {
			s.restarts++
		}
		s.cur = p
		s.lastPid, s.lastStart = p.p.Pid, p.started
		s.mu.Unlock()
		go s.watch(p)
		s.log.Info("plugin started", "pid", p.p.Pid, "version", p.version, "generation", p.gen)
	}
}

func (s *supervisor) release(p *proc) { p.inflight.Done() }

// reapLocked forgets a dead current process and schedules the next start:
// at once if it had run healthy a while, else after a back-off.
func (s *supervisor) reapLocked() {
	p := s.cur
	s.cur = nil
	if time.Since(p.started) >= s.h.opts.HealthyAfter {
		s.failures = 0
	} else {
		s.failures++
	}
	s.nextStart = time.Now().Add(s.backoff(s.failures))
	s.lastErr = fmt.Errorf("%s: process %d exited", s.spec.Label(), p.p.Pid)
	go s.kill(p) // release the data plane once its calls are done
}

// watch notices the process's end, so that List and logs say so at once.
func (s *supervisor) watch(p *proc) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.exited:
			return
		case <-t.C:
			if p.p.Exited() {
				close(p.exited)
				s.mu.Lock()
				closed := s.closed
				if !closed && s.cur == p {
					s.reapLocked()
				}
				s.mu.Unlock()
				if !closed {
					s.log.Warn("plugin process exited; the next call restarts it", "pid", p.p.Pid)
				}
				return
			}
		}
	}
}

// kill ends a process and frees its data plane once no call uses it.
func (s *supervisor) kill(p *proc) {
	p.p.Client.Kill() // graceful first: go-plugin asks, then kills after 2s
	p.cancel()
	p.inflight.Wait()
	if s.def.release != nil {
		s.def.release(p.raw)
	}
	p.p.Kill()
}

// died reports whether err came from p's process dying (or its connection
// breaking), and then wraps err with ErrPluginDied. A live plugin answers a
// ping at once; a dead one is noticed by go-plugin within milliseconds.
func (s *supervisor) died(p *proc, err error) error {
	if err == nil {
		return nil
	}
	if !p.p.Exited() && s.pingOK(p) {
		return err
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for !p.p.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s: %w (pid %d; the next call restarts it): %w", s.spec.Label(), ErrPluginDied, p.p.Pid, err)
}

// pingOK asks the plugin's gRPC health service whether it is there.
func (s *supervisor) pingOK(p *proc) bool {
	rpc, err := p.p.Client.Client()
	if err != nil {
		return false
	}
	ch := make(chan error, 1)
	go func() { ch <- rpc.Ping() }()
	select {
	case err := <-ch:
		return err == nil
	case <-time.After(time.Second):
		return true // slow, not dead: leave err as it is
	}
}

// call runs f on the current process (starting it when needed) and says
// whether an error came from the process dying.
func (s *supervisor) call(ctx context.Context, f func(raw any) error) error {
	p, err := s.get(ctx)
	if err != nil {
		return err
	}
	defer s.release(p)
	err = f(p.raw)
	if err != nil && !isKindSentinel(err) {
		return s.died(p, err)
	}
	return err
}

// launch starts one process on the locked thread, bounded by StartTimeout.
func (s *supervisor) launch(ctx context.Context) (*proc, error) {
	type result struct {
		p   *proc
		err error
	}
	ch := make(chan result, 1)
	f := func() {
		p, err := s.startProcess()
		ch <- result{p, err}
	}
	select {
	case s.start <- f:
	case <-s.done:
		return nil, fmt.Errorf("%s: %w", s.spec.Label(), ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("start %s: %w", s.spec.Label(), ctx.Err())
	}
	r := <-ch // bounded: startProcess kills a child that overruns StartTimeout
	return r.p, r.err
}

// startProcess builds the command, checks the binary, starts it through
// pluginkit.Start and configures it.
func (s *supervisor) startProcess() (*proc, error) {
	spec, o := s.spec, s.h.opts
	label := spec.Label()
	path, args := spec.Path, []string(nil)
	if path == "" {
		path, args = o.Executable, o.BuiltinArgs(spec.Kind, spec.Name)
	}
	if err := checkBinary(path, spec.SHA256); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	// The command's context kills a child that has not finished its
	// handshake and Configure within StartTimeout (go-plugin's own timeout
	// is not reachable through pluginkit); afterwards it kills the child on
	// Close.
	cctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(cctx, path, args...)
	cmd.Env = os.Environ()
	timer := time.AfterFunc(o.StartTimeout, cancel)
	fail := func(err error) (*proc, error) {
		timedOut := !timer.Stop()
		cancel()
		msg := err.Error()
		if strings.Contains(msg, "Unrecognized remote plugin message") ||
			strings.Contains(msg, "exited before we could connect") ||
			strings.Contains(msg, "plugin exited") {
			if timedOut {
				return nil, fmt.Errorf("%s: no handshake within %s: is %s a tarn %s plugin?", label, o.StartTimeout, path, spec.Kind)
			}
			return nil, fmt.Errorf("%s: exited before its handshake (its output is in the log)", label)
		}
		if i := strings.IndexByte(msg, '\n'); i >= 0 { // go-plugin's notes go to the log
			s.log.Error("plugin start failed", "error", msg)
			return nil, fmt.Errorf("%s: %s", label, strings.TrimRight(msg[:i], ": "))
		}
		return nil, err
	}
	pp, err := pluginkit.Start(pluginkit.StartOptions{
		Kind:      spec.Kind,
		Version:   s.def.version,
		Name:      spec.DisplayName(),
		Cmd:       cmd,
		SHA256:    spec.SHA256,
		Logger:    s.log,
		FastPath:  spec.FastPath,
		NewPlugin: s.def.newPlugin,
	})
	if err != nil {
		// pluginkit names the plugin by its display name; say it once, as label.
		what := fmt.Sprintf("%s plugin %q: ", spec.Kind, spec.DisplayName())
		if rest, ok := strings.CutPrefix(err.Error(), what); ok {
			err = &relabeled{msg: label + ": " + rest, err: err}
		}
		return fail(err)
	}
	p := &proc{p: pp, raw: pp.Raw, started: time.Now(), cancel: cancel, exited: make(chan struct{})}
	abort := func(err error) (*proc, error) {
		pp.Kill()
		return fail(err)
	}
	if err := s.def.check(pp.Raw); err != nil {
		return abort(fmt.Errorf("%s: %w", label, err))
	}
	ctx, cc := context.WithTimeout(cctx, o.StartTimeout)
	defer cc()
	if c, ok := pp.Raw.(pluginkit.Configurer); ok {
		cfg := spec.Config
		if !hasConfig(cfg) {
			cfg = []byte("{}")
		}
		if err := c.Configure(ctx, cfg); err != nil {
			return abort(fmt.Errorf("configure %s: %w", label, err))
		}
	} else if hasConfig(spec.Config) {
		return abort(fmt.Errorf("%s takes no settings, but the profile gives it some", label))
	}
	v, err := s.def.info(ctx, pp.Raw)
	if err != nil {
		return abort(fmt.Errorf("%s: info: %w", label, err))
	}
	p.version = v
	if !timer.Stop() {
		return abort(fmt.Errorf("%s: start took longer than %s", label, o.StartTimeout))
	}
	return p, nil
}

// checkBinary gives one clear line for a missing, unrunnable or mis-pinned
// binary before go-plugin tries it.
func checkBinary(path string, pin []byte) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("binary %s does not exist", path)
	case err != nil:
		return fmt.Errorf("binary %s: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("binary %s is a directory", path)
	case !Executable(path, st):
		return fmt.Errorf("binary %s is not executable (chmod +x it)", path)
	}
	if len(pin) == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash binary %s: %w", path, err)
	}
	if got := h.Sum(nil); !equalBytes(got, pin) {
		return fmt.Errorf("%w: %s has sha256 %s, the profile pins %s (check the pin, or rebuild the plugin)",
			pluginkit.ErrPinMismatch, path, hex.EncodeToString(got), hex.EncodeToString(pin))
	}
	return nil
}

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s *supervisor) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Kind:     s.spec.Kind,
		Name:     s.spec.DisplayName(),
		Path:     s.spec.Path,
		Protocol: s.def.version,
		FastPath: s.spec.FastPath,
		Restarts: s.restarts,
		Pid:      s.lastPid,
		Started:  s.lastStart,
	}
	if len(s.spec.SHA256) > 0 {
		st.SHA256 = hex.EncodeToString(s.spec.SHA256)
	}
	if s.cur != nil {
		// What the running process was offered: nothing on Windows or
		// with TARN_DATAPLANE=off, whatever the profile asks.
		dp := s.cur.p.DataPlane
		st.FastPath = dp.Arena != nil || dp.Mailbox != nil
	}
	if s.lastErr != nil {
		st.LastErr = s.lastErr.Error()
	}
	switch {
	case s.closed:
		st.Health = "stopped"
	case s.cur != nil && !s.cur.dead():
		st.Health = "ok"
		st.Version = s.cur.version
	case s.cur != nil:
		st.Health = "exited"
	default:
		st.Health = "down"
	}
	return st
}

func (s *supervisor) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	p := s.cur
	s.cur = nil
	ch := s.starting
	s.mu.Unlock()
	if ch != nil {
		<-ch // a start under way ends within StartTimeout and is then killed
	}
	if p != nil {
		s.kill(p)
	}
	close(s.done)
}

// relabeled is an error of pluginkit's with the plugin named as the host
// names it; it unwraps to the original (ErrPinMismatch and so on).
type relabeled struct {
	msg string
	err error
}

func (e *relabeled) Error() string { return e.msg }
func (e *relabeled) Unwrap() error { return e.err }
