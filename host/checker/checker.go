// Package checker keeps files alive: it checks which storage servers hold
// the shares of a file, verifies every byte of every share with only a
// verify cap, repairs what is missing or corrupt from K good shares and
// places the rebuilt shares to restore servers of happiness, and renews
// leases. It works on immutable files (CHK; LIT files hold their bytes in
// the cap and are always healthy), mutable files and directories, and
// walks whole directory trees (DeepCheck).
//
// Immutable files are checked here, over the storage protocol: List on
// every server, chk.VerifyShare per share, chk.NewRepairer to rebuild.
// Mutable files and directories are checked and repaired through the grid
// client (grid.Client.VerifyMutable and RepairMutable), which decodes and
// validates slot versions with host/mutable. docs/repair.md describes the
// outputs and what each outcome means.
package checker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/transport"
)

// Defaults for Config fields left zero.
const (
	DefaultServerTimeout = 30 * time.Second
	DefaultParallel      = 4
)

// Sentinel errors callers branch on (errors.Is).
var (
	// ErrBadCap: the cap cannot be checked (malformed, or a kind the
	// operation does not take, such as a directory verify cap for a deep
	// check).
	ErrBadCap = errors.New("cap cannot be checked")
	// ErrNoServers: no storage server is known.
	ErrNoServers = errors.New("no storage servers known")
)

// Config configures a Checker. Transport, Cert, GridSecret, Servers, Codec
// and LeaseSecret are the same as the node's grid client's.
type Config struct {
	Transport  transport.Transport
	Cert       tls.Certificate
	GridSecret []byte
	Servers    grid.ServerSource
	Codec      codec.Codec
	// LeaseSecret is the client's master lease secret (grid.Config's):
	// leases are renewed with the per-server secret derived from it, the
	// same one the grid client uploads with.
	LeaseSecret []byte
	// H is the happiness a repair aims for (the client's H); it is capped
	// at the file's N and raised to its K.
	H int
	// Grid is the node's grid client: mutable files and directories are
	// checked and repaired through it, and directories read for deep
	// checks. Nil: only immutable files can be checked.
	Grid *grid.Client
	// ServerTimeout bounds each request to a server (default
	// DefaultServerTimeout).
	ServerTimeout time.Duration
	// Parallel bounds the shares verified at once (default
	// DefaultParallel).
	Parallel int
	Logger   hclog.Logger
}

// Checker checks, verifies and repairs files. It is safe for concurrent
// use; Close drops its connections.
type Checker struct {
	cfg Config
	log hclog.Logger

	mu     sync.Mutex
	conns  map[string]*storageclient.Client
	closed bool

	// hung remembers servers that did not answer within ServerTimeout,
	// until a server timeout later (hung.go): later files do not wait for
	// them again.
	hmu      sync.Mutex
	hung     map[string]time.Time // node id -> until
	probing  map[string]bool      // a probe is out to it
	thawed   map[string]time.Time // when its probe last answered
	bgCtx    context.Context      // of the probes; canceled by Close
	bgCancel context.CancelFunc
	bgDone   bool // Close ran: no more probes
	bg       sync.WaitGroup
}

// New checks cfg and returns a Checker; it dials nothing yet.
func New(cfg Config) (*Checker, error) {
	if cfg.Transport == nil || cfg.Codec == nil || cfg.Servers == nil {
		return nil, errors.New("checker: transport, codec and server source are required")
	}
	if len(cfg.Cert.Certificate) == 0 {
		return nil, errors.New("checker: no node certificate")
	}
	if cfg.GridSecret != nil && len(cfg.GridSecret) != nodelink.GridSecretSize {
		return nil, fmt.Errorf("checker: grid secret is %d bytes, want %d", len(cfg.GridSecret), nodelink.GridSecretSize)
	}
	if len(cfg.LeaseSecret) == 0 {
		return nil, errors.New("checker: no lease secret")
	}
	if cfg.H <= 0 {
		cfg.H = grid.DefaultH
	}
	if cfg.ServerTimeout <= 0 {
		cfg.ServerTimeout = DefaultServerTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	bgCtx, bgCancel := context.WithCancel(context.Background())
	return &Checker{cfg: cfg, log: cfg.Logger.Named("checker"), conns: map[string]*storageclient.Client{},
		hung: map[string]time.Time{}, probing: map[string]bool{}, thawed: map[string]time.Time{}, bgCtx: bgCtx, bgCancel: bgCancel}, nil
}

// Close ends the probes of hung servers and drops every connection.
func (c *Checker) Close() error {
	c.hmu.Lock()
	c.bgDone = true
	c.hmu.Unlock()
	c.bgCancel()
	c.mu.Lock()
	c.closed = true
	for id, cl := range c.conns {
		cl.Close()
		delete(c.conns, id)
	}
	c.mu.Unlock()
	c.bg.Wait()
	return nil
}

// LeaseSecret is the lease secret a client with master secret master uses
// for storage index si on server nodeID: a tagged hash of the three, so
// each server sees a different secret for the same client and file and
// servers cannot correlate a client's leases. It is the derivation the
// grid client uses (grid.LeaseTag); a test keeps the two in step.
func LeaseSecret(master []byte, si cap.StorageIndex, nodeID string) []byte {
	h := tagged.Hash(grid.LeaseTag, master, si[:], []byte(nodeID))
	return h[:]
}

// server is one storage server, checked and ready to dial.
type server struct {
	ID   string
	Addr string
	// room is its announced free space (grid.Server.Room): a repair
	// leaves a server known too full for a share out of its targets.
	room placement.Room
}

// servers returns the known servers in ring order for si.
func (c *Checker) servers(si cap.StorageIndex) ([]server, error) {
	byID := map[string]server{}
	var ids []string
	for _, s := range c.cfg.Servers.Servers() {
		a, err := nodelink.ParseAddr(s.Addr)
		if err != nil {
			c.log.Warn("skipping server with a bad address", "node", s.NodeID, "error", err)
			continue
		}
		id := s.NodeID
		if id == "" {
			id = identity.NodeIDOf(a.KeyHash)
		}
		if _, dup := byID[id]; dup {
			continue
		}
		byID[id] = server{ID: id, Addr: s.Addr, room: s.Room()}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, ErrNoServers
	}
	out := make([]server, 0, len(ids))
	for _, id := range placement.Permute(si[:], ids) {
		out = append(out, byID[id])
	}
	return out, nil
}

// conn returns the pooled connection to s.
func (c *Checker) conn(ctx context.Context, s server) (*storageclient.Client, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("checker is closed")
	}
	cl := c.conns[s.ID]
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	cl, err := storageclient.Dial(ctx, c.cfg.Transport, s.Addr, c.cfg.Cert, storageclient.Options{
		GridSecret: c.cfg.GridSecret, CallTimeout: c.cfg.ServerTimeout, DialTimeout: c.cfg.ServerTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", s.ID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cl.Close()
		return nil, errors.New("checker is closed")
	}
	if old := c.conns[s.ID]; old != nil {
		cl.Close()
		return old, nil
	}
	c.conns[s.ID] = cl
	return cl, nil
}

// drop forgets a connection that failed, so the next use redials.
func (c *Checker) drop(s server, cl *storageclient.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns[s.ID] == cl {
		delete(c.conns, s.ID)
		cl.Close()
	}
}

// do runs fn on the connection to s with a request deadline; a failure
// that is not a clear answer drops the connection.
func (c *Checker) do(ctx context.Context, s server, fn func(context.Context, *storageclient.Client) error) error {
	cl, err := c.conn(ctx, s)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.ServerTimeout)
	defer cancel()
	err = fn(rctx, cl)
	if err != nil && ctx.Err() == nil && !clearAnswer(err) {
		c.drop(s, cl)
	}
	return err
}
