package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/atomicfile"
	"github.com/tarnfs/tarn/host/filelock"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/node"
)

// EndpointsFile is the file, in the dev folder, that says where the dev
// grid listens.
const EndpointsFile = "endpoints.json"

var devFlags struct {
	dir     string
	storage int
	timeout time.Duration
}

var devCmd = &cobra.Command{
	Use:   "dev",
	Short: "Run a whole grid on this machine: an introducer, storage nodes and a client",
	Long: `Run a development grid on loopback: an introducer, --storage-nodes storage
nodes and a client, each a separate "tarn run" process. The first run makes
the node folders under --dir (keys, secrets, profiles with free ports chosen
once); later runs reuse them, so stored files stay readable. Once the client
sees every storage node, the endpoints are printed and written to
DIR/endpoints.json. Ctrl-C stops every process. Each node logs to
DIR/NAME/node.log.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		dir := devFlags.dir
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return fmt.Errorf("dev: no --dir and no home folder: %w", err)
			}
			dir = filepath.Join(home, ".tarn-dev")
		}
		if devFlags.storage < 1 || devFlags.storage > 64 {
			return fmt.Errorf("dev: --storage-nodes %d: want 1 to 64", devFlags.storage)
		}
		return runDev(cmd.OutOrStdout(), dir, devFlags.storage, devFlags.timeout)
	},
}

func init() {
	f := devCmd.Flags()
	f.StringVar(&devFlags.dir, "dir", "", "folder of the dev grid's nodes (default ~/.tarn-dev)")
	f.IntVar(&devFlags.storage, "storage-nodes", 5, "number of storage nodes")
	f.DurationVar(&devFlags.timeout, "timeout", 60*time.Second, "how long to wait for the grid to come up")
	rootCmd.AddCommand(devCmd)
}

// Endpoints is DIR/endpoints.json. Frontends add their own fields.
type Endpoints struct {
	Dir        string         `json:"dir"`
	Introducer string         `json:"introducer"`
	Client     ClientEndpoint `json:"client"`
	Nodes      []DevNode      `json:"nodes"`
	// RootCap is the dev root directory's write cap (also the client's
	// alias "dev:"), Account the dev account whose root it is.
	RootCap string      `json:"root_cap,omitempty"`
	Account *DevAccount `json:"account,omitempty"`
	// WebDAV and SFTP are there when the client runs those frontends.
	WebDAV *DevWebDAV `json:"webdav,omitempty"`
	SFTP   *DevSFTP   `json:"sftp,omitempty"`
}

// DevAccount is the dev account's login, and the login of the read-only
// account on the same root.
type DevAccount struct {
	User             string `json:"user"`
	Password         string `json:"password"`
	ReadOnlyUser     string `json:"read_only_user,omitempty"`
	ReadOnlyPassword string `json:"read_only_password,omitempty"`
}

// DevWebDAV is the client's WebDAV frontend.
type DevWebDAV struct {
	URL              string `json:"url"`
	User             string `json:"user"`
	Password         string `json:"password"`
	ReadOnlyUser     string `json:"read_only_user,omitempty"`
	ReadOnlyPassword string `json:"read_only_password,omitempty"`
}

// DevSFTP is the client's SFTP frontend.
type DevSFTP struct {
	Addr             string `json:"addr"`
	User             string `json:"user"`
	Password         string `json:"password"`
	ReadOnlyUser     string `json:"read_only_user,omitempty"`
	ReadOnlyPassword string `json:"read_only_password,omitempty"`
}

// ClientEndpoint is how to reach the client node.
type ClientEndpoint struct {
	APIURL    string `json:"api_url"`
	NodeDir   string `json:"node_dir"`
	TokenFile string `json:"token_file"`
}

// DevNode is one process of the dev grid.
type DevNode struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Dir  string `json:"dir"`
	Pid  int    `json:"pid"`
	// APIURL is the node's local API: its status page, /metrics.
	APIURL string `json:"api_url,omitempty"`
}

// devShares picks the encoding for a grid of s storage nodes: K=3 H=4 N=5,
// lowered to fit fewer nodes.
func devShares(s int) conf.Shares {
	n := min(5, s)
	h := min(4, s)
	k := min(3, (n+1)/2)
	return conf.Shares{K: k, H: h, N: n}
}

type devProc struct {
	DevNode
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error
}

func runDev(out io.Writer, dir string, storageNodes int, timeout time.Duration) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	unlock, err := lockDev(dir)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer unlock()
	nodes, err := setupDev(dir, storageNodes)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("dev: find the tarn binary: %w", err)
	}
	os.Remove(filepath.Join(dir, EndpointsFile))

	// SIGHUP too: a closed terminal stops the grid as Ctrl-C does, removing
	// endpoints.json, instead of killing tarn dev where it stands.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// Pdeathsig fires when the thread that started a child ends: keep this
	// goroutine on one thread for the whole run.
	runtime.LockOSThread()

	var procs []*devProc
	defer func() { stopAll(procs) }()
	start := func(n DevNode) (*devProc, error) {
		p, err := startDevNode(exe, n, storageNodes)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}
	// The introducer first: the others dial it at once.
	intro, err := start(nodes[0])
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	deadline := time.Now().Add(timeout)
	introInfo, err := waitInfo(ctx, intro, deadline)
	if err != nil {
		return devFailure(intro, err)
	}
	intro.APIURL = introInfo.APIURL
	for _, n := range nodes[1:] {
		if _, err := start(n); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	// Every node listening (node.json written by this run's process); the
	// client's list alone is not enough: the introducer keeps the last
	// run's announcements.
	var clientInfo *node.Info
	for _, p := range procs[1:] {
		in, err := waitInfo(ctx, p, deadline)
		if err != nil {
			return devFailure(p, err)
		}
		p.APIURL = in.APIURL
		clientInfo = in
	}
	client := procs[len(procs)-1]
	if err := waitServers(ctx, procs, clientInfo, storageNodes, deadline); err != nil {
		return err
	}
	// The dev root directory and account (cmd_account.go); the first run
	// adds them and the frontends to the client's profile, and restarts
	// the client to take them.
	tok, err := node.ReadToken(clientInfo.TokenFile)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	ds, changed, err := devAccount(ctx, dir, client.Dir, &api.Client{BaseURL: clientInfo.APIURL, Token: tok})
	if err != nil {
		return fmt.Errorf("dev: root directory and account: %w", err)
	}
	if changed {
		terminate(client.cmd.Process)
		select {
		case <-client.exited:
		case <-time.After(15 * time.Second):
			client.cmd.Process.Kill()
			<-client.exited
		}
		procs = procs[:len(procs)-1]
		if client, err = start(client.DevNode); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		deadline = time.Now().Add(timeout)
		if clientInfo, err = waitInfo(ctx, client, deadline); err != nil {
			return devFailure(client, err)
		}
		client.APIURL = clientInfo.APIURL
		if err := waitServers(ctx, procs, clientInfo, storageNodes, deadline); err != nil {
			return err
		}
	}

	ep := Endpoints{
		Dir:        dir,
		Introducer: introInfo.IntroducerURL,
		Client:     ClientEndpoint{APIURL: clientInfo.APIURL, NodeDir: client.Dir, TokenFile: clientInfo.TokenFile},
	}
	for _, p := range procs {
		ep.Nodes = append(ep.Nodes, p.DevNode)
	}
	ep.RootCap = ds.RootCap
	ep.Account = &DevAccount{User: DevUser, Password: ds.Password, ReadOnlyUser: DevROUser, ReadOnlyPassword: ds.ROPassword}
	if ds.WebDAVListen != "" && listening(ds.WebDAVListen, 2*time.Second) {
		ep.WebDAV = &DevWebDAV{URL: "http://" + ds.WebDAVListen + "/", User: DevUser, Password: ds.Password,
			ReadOnlyUser: DevROUser, ReadOnlyPassword: ds.ROPassword}
	}
	if ds.SFTPListen != "" && listening(ds.SFTPListen, time.Second) {
		ep.SFTP = &DevSFTP{Addr: ds.SFTPListen, User: DevUser, Password: ds.Password,
			ReadOnlyUser: DevROUser, ReadOnlyPassword: ds.ROPassword}
	}
	b, _ := json.MarshalIndent(ep, "", "  ")
	epPath := filepath.Join(dir, EndpointsFile)
	// It holds the dev accounts' passwords: owner only.
	if err := atomicfile.WriteFile(epPath, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("dev: write %s: %w", epPath, err)
	}
	defer os.Remove(epPath)
	fmt.Fprintf(out, "tarn dev grid is up (%d storage nodes, shares k=%d h=%d n=%d)\n",
		storageNodes, devShares(storageNodes).K, devShares(storageNodes).H, devShares(storageNodes).N)
	fmt.Fprintf(out, "  introducer: %s\n", ep.Introducer)
	fmt.Fprintf(out, "  client api: %s (token in %s)\n", ep.Client.APIURL, ep.Client.TokenFile)
	for _, p := range procs {
		fmt.Fprintf(out, "  %-12s pid %-7d %s  status page %s/\n", p.Name, p.Pid, p.Dir, p.APIURL)
	}
	fmt.Fprintf(out, "  root:       alias dev: in the client (account %q, password in %s)\n", DevUser, filepath.Join(dir, DevPasswordFile))
	if ep.WebDAV != nil {
		fmt.Fprintf(out, "  webdav:     %s\n", ep.WebDAV.URL)
	}
	if ep.SFTP != nil {
		fmt.Fprintf(out, "  sftp:       sftp -P %s %s@%s\n", ep.SFTP.Addr[strings.LastIndexByte(ep.SFTP.Addr, ':')+1:], DevUser, ep.SFTP.Addr[:strings.LastIndexByte(ep.SFTP.Addr, ':')])
	}
	fmt.Fprintf(out, "endpoints: %s\ntry: TARN_NODE=%s tarn put FILE, tarn cp -r DIR dev:\nCtrl-C stops the grid.\n", epPath, client.Dir)

	// Run until a signal. A node that dies by itself (a test killing a
	// storage node, a crash) is reported and the rest run on: a grid
	// survives losing nodes, and that is worth trying here.
	died := make(chan *devProc, len(procs))
	for _, p := range procs {
		go func() { <-p.exited; died <- p }()
	}
	for left := len(procs); ; {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "stopping the dev grid")
			return nil
		case p := <-died:
			left--
			fmt.Fprintf(os.Stderr, "tarn dev: node %s (pid %d) exited: %v; the others run on (its log: %s)\n",
				p.Name, p.Pid, p.err, filepath.Join(p.Dir, "node.log"))
			if left == 0 {
				return errors.New("dev: every node exited")
			}
		}
	}
}

// lockDev makes sure one tarn dev at a time runs a folder: a second would
// take the first one's node.json files for its own.
func lockDev(dir string) (func(), error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := filelock.TryLock(f); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, filelock.ErrWouldBlock) {
			return nil, fmt.Errorf("%s is in use by another tarn dev (pid %s)", dir, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}

// setupDev makes (or reuses) the dev grid's node folders and returns its
// nodes, introducer first and client last.
func setupDev(dir string, storageNodes int) ([]DevNode, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	secretPath := filepath.Join(dir, "grid.secret")
	secret, err := identity.LoadSecret(secretPath)
	if errors.Is(err, os.ErrNotExist) {
		secret, err = identity.CreateSecret(secretPath)
	}
	if err != nil {
		return nil, fmt.Errorf("grid secret: %w", err)
	}
	// mkNode loads a node's profile, or writes a new one with set applied.
	mkNode := func(name string, set func(p *conf.Profile) error) (*conf.Profile, error) {
		ndir := filepath.Join(dir, name)
		if p, err := conf.Load(ndir); err == nil {
			if _, err := node.Prepare(p, secret); err != nil {
				return nil, err
			}
			// A folder made before every node served its API: give the
			// node a port of its own (the role's default would be shared
			// by the storage nodes).
			if p.Node.APIListen == "" && !(p.Client.Enabled && p.Client.APIListen != "") {
				port, err := freePort()
				if err != nil {
					return nil, err
				}
				p.Node.APIListen = "127.0.0.1:" + port
				if err := node.WriteProfile(p); err != nil {
					return nil, err
				}
			}
			return p, nil
		} else if !errors.Is(err, conf.ErrNoProfile) {
			return nil, err
		}
		p, err := conf.New(ndir)
		if err != nil {
			return nil, err
		}
		p.Node.Name = name
		p.Grid.Name = "dev"
		p.Plugins.Storage.Name = "disk"
		// Each node its own API port (status page, metrics), kept.
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p.Node.APIListen = "127.0.0.1:" + port
		if err := set(p); err != nil {
			return nil, err
		}
		if _, err := node.Prepare(p, secret); err != nil {
			return nil, err
		}
		if err := node.WriteProfile(p); err != nil {
			return nil, err
		}
		return p, nil
	}
	var nodes []DevNode
	introPort, err := freePort()
	if err != nil {
		return nil, err
	}
	ip, err := mkNode("introducer", func(p *conf.Profile) error {
		p.Introducer.Enabled = true
		p.Introducer.Listen = []string{"tcp:127.0.0.1:" + introPort}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("introducer: %w", err)
	}
	introID, err := identity.Load(ip.Node.StateDir)
	if err != nil {
		return nil, fmt.Errorf("introducer: %w", err)
	}
	introURL := "tarn://" + introID.KeyHash() + "@" + strings.Join(listenOf(ip.Introducer), ",")
	nodes = append(nodes, DevNode{Name: "introducer", Role: "introducer", Dir: ip.Dir})
	for i := 1; i <= storageNodes; i++ {
		name := fmt.Sprintf("storage-%d", i)
		p, err := mkNode(name, func(p *conf.Profile) error {
			port, err := freePort()
			p.Storage.Enabled = true
			p.Storage.Listen = []string{"tcp:127.0.0.1:" + port}
			p.Storage.ReservedSpace = 64 << 20
			p.Grid.Introducers = []string{introURL}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		nodes = append(nodes, DevNode{Name: name, Role: "storage", Dir: p.Dir})
	}
	cp, err := mkNode("client", func(p *conf.Profile) error {
		p.Client.Enabled = true
		p.Client.Shares = devShares(storageNodes)
		p.Client.ServerTimeout = conf.Duration(10 * time.Second)
		p.Grid.Introducers = []string{introURL}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	// Another --storage-nodes than last time: fit the shares to it (files
	// stored before keep their own k and n, which their caps carry).
	if want := devShares(storageNodes); cp.Client.Shares != want {
		cp.Client.Shares = want
		if err := node.WriteProfile(cp); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	nodes = append(nodes, DevNode{Name: "client", Role: "client", Dir: cp.Dir})
	return nodes, nil
}

func listenOf(in conf.Introducer) []string {
	if len(in.Announce) > 0 {
		return in.Announce
	}
	return in.Listen
}

// freePort finds a free loopback port. It is written into a profile once
// and kept, so the grid's addresses do not change between runs. The node
// binds it only later, so the port is taken below the kernel's ephemeral
// range when it can be: there no outgoing connection of any process can
// take it meanwhile (a port the kernel hands out for ":0" can be handed to
// a connect() a moment later, and the node then fails with "address
// already in use").
func freePort() (string, error) {
	lo, _ := ephemeralRange()
	if lo > 10000 {
		handedOut.Lock()
		defer handedOut.Unlock()
		for try := 0; try < 64; try++ {
			port := strconv.Itoa(10000 + rand.IntN(lo-10000))
			// Nothing holds a port between its choice and the node's
			// bind: never hand the same one out twice.
			if handedOut.ports[port] {
				continue
			}
			if ln, err := net.Listen("tcp", "127.0.0.1:"+port); err == nil {
				ln.Close()
				handedOut.ports[port] = true
				return port, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// handedOut is the ports freePort has chosen in this process.
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: map[string]bool{}}

// ephemeralRange is the kernel's range of ports for outgoing connections
// (Linux: /proc/sys/net/ipv4/ip_local_port_range); 0, 0 when unknown.
func ephemeralRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0, 0
	}
	return lo, hi
}

func startDevNode(exe string, n DevNode, storageNodes int) (*devProc, error) {
	// A node.json left by a killed run would be taken for the new one.
	os.Remove(filepath.Join(n.Dir, node.InfoFile))
	lf, err := os.OpenFile(filepath.Join(n.Dir, "node.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	fmt.Fprintf(lf, "---- tarn dev: starting %s at %s\n", n.Name, time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(exe, "run", n.Dir)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = devEnviron(n.Role, storageNodes)
	cmd.SysProcAttr = devProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", n.Name, err)
	}
	p := &devProc{DevNode: n, cmd: cmd, log: lf, exited: make(chan struct{})}
	p.Pid = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	return p, nil
}

// stopAll sends SIGTERM to every process, waits for each, and kills what
// is still running after a grace period.
func stopAll(procs []*devProc) {
	for _, p := range procs {
		terminate(p.cmd.Process)
	}
	grace := time.After(15 * time.Second)
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-grace:
			for _, q := range procs {
				q.cmd.Process.Kill()
			}
			<-p.exited
		}
	}
}

// waitInfo waits for the process's node.json (written once it listens).
func waitInfo(ctx context.Context, p *devProc, deadline time.Time) (*node.Info, error) {
	for {
		in, err := node.ReadInfo(p.Dir)
		if err == nil && in.Pid == p.Pid {
			return in, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("exited before listening: %v", p.err)
		case <-ctx.Done():
			return nil, errors.New("interrupted while starting")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.New("did not start listening in time (no node.json)")
		}
	}
}

// waitServers polls the client's status until it sees every storage node.
func waitServers(ctx context.Context, procs []*devProc, ci *node.Info, want int, deadline time.Time) error {
	tok, err := node.ReadToken(ci.TokenFile)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	c := &api.Client{BaseURL: ci.APIURL, Token: tok}
	for {
		for _, p := range procs {
			select {
			case <-p.exited:
				return devFailure(p, fmt.Errorf("exited while the grid came up: %v", p.err))
			default:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := c.Status(rctx)
		cancel()
		if err == nil && st.Known >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("dev: interrupted while the grid came up")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			return devFailure(procs[len(procs)-1], fmt.Errorf("status API: %v", err))
		}
		// Name the first storage node the client does not know.
		seen := map[string]bool{}
		for _, s := range st.Servers {
			seen[s.NodeID] = true
		}
		for _, p := range procs {
			if p.Role != "storage" {
				continue
			}
			id, err := identity.Load(p.Dir)
			if err == nil && !seen[id.NodeID()] {
				return devFailure(p, fmt.Errorf("the client does not see it: %d of %d storage nodes known", st.Known, want))
			}
		}
		return fmt.Errorf("dev: the client sees %d of %d storage nodes", st.Known, want)
	}
}

// devFailure is one clear line naming the node, then the tail of its log.
func devFailure(p *devProc, err error) error {
	logPath := filepath.Join(p.Dir, "node.log")
	tail := logTail(logPath, 15)
	if tail != "" {
		fmt.Fprintf(os.Stderr, "---- last lines of %s:\n%s\n----\n", logPath, tail)
	}
	return fmt.Errorf("dev: node %s (pid %d) %v; its log: %s", p.Name, p.Pid, err, logPath)
}

func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	parts := strings.Split(string(b), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
