// Package node runs one tarn node: it loads the profile and the node's
// identity, starts the plugins the profile names (through pluginhost), then
// the services the profile enables — the introducer, the storage server,
// the client and its frontends — then the node's local HTTP API (status
// page, metrics, and a client's file routes), and stops them all cleanly.
//
// While every service listens the node writes DIR/node.json (Info), which
// tells the CLI and `tarn dev` where the node can be reached; it is removed
// on a clean stop.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/atomicfile"
	"github.com/tarnfs/tarn/host/filelock"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/metrics"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/host/vdrive"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage"
)

// InfoFile is the name of the file, in the node folder, that says where a
// running node listens.
const InfoFile = "node.json"

// Version is announced to the grid.
const Version = "tarn/0.1"

// Info is DIR/node.json.
type Info struct {
	NodeID        string   `json:"node_id"`
	KeyHash       string   `json:"key_hash"`
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	Pid           int      `json:"pid"`
	IntroducerURL string   `json:"introducer_url,omitempty"`
	StorageURL    string   `json:"storage_url,omitempty"`
	APIURL        string   `json:"api_url,omitempty"`
	TokenFile     string   `json:"token_file,omitempty"`
	WebDAV        []string `json:"webdav,omitempty"` // URLs of the WebDAV frontends
	SFTP          []string `json:"sftp,omitempty"`   // addresses of the SFTP frontends
	Started       string   `json:"started"`
}

// ErrNotRunning is returned by ReadInfo when the node folder has no
// node.json: the node is not running (or has not finished starting).
var ErrNotRunning = errors.New("node is not running")

// ReadInfo reads DIR/node.json.
func ReadInfo(dir string) (*Info, error) {
	path := filepath.Join(dir, InfoFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s; start it with: tarn run %s)", dir, ErrNotRunning, InfoFile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &in, nil
}

// ReadToken reads an API token file.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read api token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("read api token: %s is empty", path)
	}
	return t, nil
}

// Options tune Start. The zero value runs a node as `tarn run` does.
type Options struct {
	// Logger receives every line; nil makes one at the profile's level
	// writing to LogOutput.
	Logger    hclog.Logger
	LogOutput io.Writer // default os.Stderr
	// Plugins is handed to pluginhost (executable and arguments that serve
	// built-in plugins; tests point them at the test binary). Its Logger is
	// set from Logger.
	Plugins pluginhost.Options
	// SpaceCheckEvery is how often a storage node reads its free space to
	// re-announce a material change (default
	// introducer.DefaultSpaceEvery; tests).
	SpaceCheckEvery time.Duration
}

// Node is a running node.
type Node struct {
	prof    *conf.Profile
	id      *identity.Identity
	log     hclog.Logger
	plugins *pluginhost.Host
	info    Info
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stops run in reverse order on Stop.
	stops []func()

	list *introducer.ServerList
	sub  *introducer.Subscriber
	// subURLs and pubs are the introducers' URLs of sub's links, and the
	// publishers with theirs, for the status (introducer links).
	subURLs []string
	pubs    []publisher
	seen    *lastSeen
	links   *links // the grid client's links to servers (links.go)
	client  *grid.Client
	api     *api.Server

	metrics *metrics.Metrics
	intro   *introducer.Service
	storage *storageserver.Server
	backend storage.Backend
	// Set by startClient for the API's file routes.
	files   api.Files
	store   vdrive.Store
	checker api.Checker

	stopOnce sync.Once
	stopErr  error
}

// Run runs the node in dir until ctx ends, then stops it. logger may be
// nil (one is made at the profile's level, on stderr).
func Run(ctx context.Context, dir string, logger hclog.Logger) error {
	n, err := Start(ctx, dir, Options{Logger: logger})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return n.Stop()
}

// Start loads the profile in dir and starts the node. On error nothing is
// left running.
func Start(ctx context.Context, dir string, opts Options) (*Node, error) {
	p, err := conf.Load(dir)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		out := opts.LogOutput
		if out == nil {
			out = os.Stderr
		}
		// Plugins log JSON at trace on their stderr; go-plugin re-logs each
		// line through this logger (named "NAME.plugin.KIND.PLUGIN"), so
		// the level filters theirs too and the format applies to all.
		log = hclog.New(&hclog.LoggerOptions{
			Name:       p.Node.Name,
			Level:      hclog.LevelFromString(p.Node.LogLevel),
			Output:     out,
			JSONFormat: p.Node.LogFormat == "json",
		})
	}
	// Durations in log fields as "1.5s" in both formats (logdur.go).
	log = withDurations(log)
	id, err := identity.Load(p.Node.StateDir)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w (tarn init makes one)", p.Node.Name, err)
	}
	unlock, err := lockDir(p)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", p.Node.Name, err)
	}
	n := &Node{prof: p, id: id, log: log, started: time.Now(), seen: newLastSeen(), links: newLinks(), metrics: metrics.New()}
	n.onStop(unlock)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.info = Info{
		NodeID: id.NodeID(), KeyHash: id.KeyHash(), Name: p.Node.Name, Roles: p.Roles(),
		Pid: os.Getpid(), Started: n.started.UTC().Format(time.RFC3339),
	}
	if err := n.start(ctx, opts); err != nil {
		n.Stop()
		return nil, fmt.Errorf("start node %s: %w", p.Node.Name, err)
	}
	if err := writeJSONAtomic(filepath.Join(p.Dir, InfoFile), n.info); err != nil {
		n.Stop()
		return nil, fmt.Errorf("start node %s: write %s: %w", p.Node.Name, InfoFile, err)
	}
	log.Info("node running", "node_id", n.info.NodeID, "roles", strings.Join(n.info.Roles, ","),
		"introducer", n.info.IntroducerURL, "storage", n.info.StorageURL, "api", n.info.APIURL)
	return n, nil
}

// Info says where the node listens (what node.json holds).
func (n *Node) Info() Info { return n.info }

// Plugins is the node's plugin host.
func (n *Node) Plugins() *pluginhost.Host { return n.plugins }

// Stop stops every service and plugin and removes node.json. It may be
// called more than once.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		// node.json goes first (nobody should dial a stopping node) and the
		// lock last (onStop(unlock) was the first registered).
		os.Remove(filepath.Join(n.prof.Dir, InfoFile))
		n.cancel()
		for i := len(n.stops) - 1; i >= 0; i-- {
			n.stops[i]()
		}
		n.wg.Wait()
		n.log.Info("node stopped")
	})
	return n.stopErr
}

func (n *Node) onStop(f func()) { n.stops = append(n.stops, f) }

func (n *Node) goRun(name string, f func(ctx context.Context) error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := f(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Error(name+" stopped", "error", err)
		}
	}()
}

func (n *Node) start(ctx context.Context, opts Options) error {
	p := n.prof
	specs, err := PluginSpecs(p)
	if err != nil {
		return err
	}
	po := opts.Plugins
	po.Logger = n.log.Named("plugin")
	n.plugins, err = pluginhost.New(ctx, po, specs...)
	if err != nil {
		return err
	}
	n.onStop(func() { n.plugins.Close() })
	cert, err := n.id.TLSCertificate()
	if err != nil {
		return err
	}
	gridSecret, err := identity.LoadSecret(p.Grid.SecretFile)
	if err != nil {
		return fmt.Errorf("grid.secret_file: %w", err)
	}
	tr, err := n.plugins.Transport()
	if err != nil {
		return err
	}
	introducers := append([]string(nil), p.Grid.Introducers...)

	if p.Introducer.Enabled {
		svc, err := introducer.NewService(introducer.ServiceConfig{
			Grid: p.Grid.Name, GridSecret: gridSecret,
			StatePath: filepath.Join(p.Node.StateDir, "introducer.json"),
			Logger:    n.log,
		})
		if err != nil {
			return err
		}
		g := nodelink.NewServer(cert)
		svc.Register(g)
		n.intro = svc
		addrs, err := n.serve(ctx, "introducer", g, tr, p.Introducer.Listen)
		if err != nil {
			return err
		}
		n.info.IntroducerURL = nodeURL(n.id.KeyHash(), conf.Announced(p.Introducer.Announce, addrs))
		if !containsKey(introducers, n.id.KeyHash()) {
			introducers = append(introducers, n.info.IntroducerURL)
		}
	}

	if p.Storage.Enabled {
		backend, err := n.plugins.Storage()
		if err != nil {
			return err
		}
		srv, err := storageserver.New(storageserver.Config{
			Backend: backend, GridSecret: gridSecret, Reserved: int64(p.Storage.ReservedSpace),
			LeasePath: filepath.Join(p.Node.StateDir, "leases.db"), Software: Version, Logger: n.log,
			GC: p.Storage.GC, LeaseDuration: time.Duration(p.Storage.LeaseDuration), CrawlInterval: time.Duration(p.Storage.GCInterval),
			// Servers refuse slot writes not signed by the slot's key or older
			// than what they hold.
			ValidateSlotWrite: mutable.ValidateSlotWrite,
		})
		if err != nil {
			return err
		}
		n.onStop(func() { srv.Close() })
		n.storage, n.backend = srv, backend
		addrs, err := n.serve(ctx, "storage", srv.NewGRPCServer(cert, n.metrics.GRPCServerOptions()...), tr, p.Storage.Listen)
		if err != nil {
			return err
		}
		n.info.StorageURL = nodeURL(n.id.KeyHash(), conf.Announced(p.Storage.Announce, addrs))
		watch := n.spaceWatch(srv, backend, int64(p.Storage.ReservedSpace), opts.SpaceCheckEvery)
		free := watch.FreeSpace(n.ctx, func(err error) { n.log.Warn("read free space for the announcement", "error", err) })
		for _, u := range introducers {
			pub, err := introducer.NewPublisher(introducer.PublisherConfig{
				Identity: n.id, Introducer: introducer.NodelinkDialer(tr, u, cert, gridSecret),
				Grid: p.Grid.Name, Addresses: []string{n.info.StorageURL}, Version: Version,
				Nickname: p.Node.Name, FreeSpace: free,
				Backoff: introducer.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second},
				Logger:  n.log, Name: u,
			})
			if err != nil {
				return err
			}
			n.pubs = append(n.pubs, publisher{url: u, pub: pub})
			n.goRun("publisher", pub.Run)
		}
		n.goRun("space watch", watch.Run)
	}

	if p.Client.Enabled {
		if err := n.startClient(ctx, tr, cert, gridSecret, introducers); err != nil {
			return err
		}
		// The frontends reach the grid through the client's vdrive.
		if n.info.WebDAV, err = StartWebDAV(ctx, n); err != nil {
			return err
		}
		if n.info.SFTP, err = StartSFTP(ctx, n); err != nil {
			return err
		}
	}
	// Last, once every service is up: the API, whose status reads them.
	return n.startAPI()
}

// serve listens on every address and serves g there; it returns the
// addresses as bound (a port 0 replaced by the chosen port).
func (n *Node) serve(ctx context.Context, name string, g *grpc.Server, tr *pluginhost.Transport, listen []string) ([]string, error) {
	var addrs []string
	n.onStop(g.Stop)
	for _, a := range listen {
		ln, err := tr.Listen(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		addrs = append(addrs, ln.Addr().String())
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := g.Serve(ln); err != nil && n.ctx.Err() == nil {
				n.log.Error(name+" stopped serving", "address", a, "error", err)
			}
		}()
		n.log.Debug(name+" listening", "address", ln.Addr().String())
	}
	return addrs, nil
}

func nodeURL(keyHash string, addrs []string) string {
	return nodelink.Addr{KeyHash: keyHash, Transports: addrs}.String()
}

func containsKey(urls []string, keyHash string) bool {
	for _, u := range urls {
		if a, err := nodelink.ParseAddr(u); err == nil && a.KeyHash == keyHash {
			return true
		}
	}
	return false
}

func dropKind(specs []pluginhost.Spec, k pluginkit.Kind) []pluginhost.Spec {
	out := specs[:0]
	for _, s := range specs {
		if s.Kind != k {
			out = append(out, s)
		}
	}
	return out
}

// ErrRunning: another process runs the node already.
var ErrRunning = errors.New("node is already running")

// lockDir takes the node's lock file (STATE/node.lock) so that two
// processes never run one node: they would share its key, its shares and
// its lease database. The kernel drops the lock when the process dies.
func lockDir(p *conf.Profile) (func(), error) {
	if err := os.MkdirAll(p.Node.StateDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(p.Node.StateDir, "node.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := filelock.TryLock(f); err != nil {
		f.Close()
		if errors.Is(err, filelock.ErrWouldBlock) {
			who := ""
			if in, err := ReadInfo(p.Dir); err == nil {
				who = fmt.Sprintf(" (pid %d)", in.Pid)
			}
			return nil, fmt.Errorf("%s: %w%s", p.Dir, ErrRunning, who)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// ensureToken returns the API token in path, making a new one (0600) on
// first start.
func ensureToken(path string) (string, error) {
	t, err := ReadToken(path)
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	t = hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create api token: %w", err)
	}
	if _, err := f.WriteString(t + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write api token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write api token: %w", err)
	}
	return t, nil
}

// writeJSONAtomic writes v as JSON to path whole or not at all.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
