package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/api"
	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/checker"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/host/vdrive"
)

// startClient starts the server list (static servers plus the
// introducers' announcements), the grid client and the local API.
func (n *Node) startClient(ctx context.Context, tr *pluginhost.Transport, cert tls.Certificate, gridSecret []byte, introducers []string) error {
	p := n.prof
	var static []introducer.Server
	for i, s := range p.Grid.Servers {
		sv, err := introducer.StaticServer(s.Name, s.Address, s.KeyHash)
		if err != nil {
			return p.Errorf(fmt.Sprintf("grid.servers[%d]", i), "%v", err)
		}
		static = append(static, sv)
	}
	n.list = introducer.NewServerList(static)
	var dialers []introducer.Dialer
	for _, u := range introducers {
		dialers = append(dialers, introducer.NodelinkDialer(tr, u, cert, gridSecret))
	}
	if err := os.MkdirAll(filepath.Join(p.Node.StateDir, identity.PrivateDir), 0o700); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	sub, err := introducer.NewSubscriber(introducer.SubscriberConfig{
		Grid: p.Grid.Name, Introducers: dialers, List: n.list,
		Backoff: introducer.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second},
		Logger:  n.log, Names: introducers,
		// The last servers verified, for a start while the introducers
		// are down (private/servers.cache).
		CacheFile: filepath.Join(p.Node.StateDir, identity.PrivateDir, introducer.CacheFile),
	})
	if err != nil {
		return err
	}
	n.sub, n.subURLs = sub, introducers
	n.goRun("subscriber", sub.Run)
	n.goRun("server list watch", n.seen.watch(n.list))

	codec, err := n.plugins.Codec()
	if err != nil {
		return err
	}
	var convergence []byte
	if p.Client.Convergence != "random" {
		if convergence, err = identity.LoadSecret(p.Client.ConvergenceSecretFile); err != nil {
			return fmt.Errorf("client.convergence_secret_file: %w", err)
		}
	}
	leaseSecret, err := loadOrCreateSecret(filepath.Join(p.Node.StateDir, identity.PrivateDir, "lease.secret"))
	if err != nil {
		return err
	}
	tmp := filepath.Join(p.Node.StateDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("client temp folder: %w", err)
	}
	n.client, err = grid.New(grid.Config{
		// Counted per storage server (bytes, links) for /metrics.
		Transport: &countingTransport{Transport: tr, n: n}, Cert: cert, GridSecret: gridSecret, Codec: codec,
		Servers: grid.ServerFunc(n.gridServers),
		K:       p.Client.Shares.K, H: p.Client.Shares.H, N: p.Client.Shares.N,
		SegmentSize: int(p.Client.SegmentSize), Convergence: convergence, LeaseSecret: leaseSecret,
		TempDir: tmp, ServerTimeout: p.Client.ServerTimeout.D(), Logger: n.log,
		GridName: p.Grid.Name, // named when a server refuses this node
		Unlisted: sub.Refused, // named when the introducers refuse it
	})
	if err != nil {
		return err
	}
	n.onStop(func() { n.client.Close() })
	// Rollback protection of mutable files survives restarts: the highest
	// version seen of each slot is kept in the state folder.
	seen, err := mutable.OpenFileSeen(filepath.Join(p.Node.StateDir, "mutable-seen.db"))
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	n.onStop(func() { seen.Close() })
	n.client.SetSeenStore(seen)
	n.goRun("failing server probe", n.probeFailing)

	// Check, verify, repair and lease renewal (/v1/check, /v1/deep-check)
	// with the grid client's identity and lease secret.
	ck, err := checker.New(checker.Config{
		Transport: tr, Cert: cert, GridSecret: gridSecret, Servers: grid.ServerFunc(n.gridServers),
		Codec: codec, LeaseSecret: leaseSecret, H: p.Client.Shares.H, Grid: n.client,
		ServerTimeout: p.Client.ServerTimeout.D(), Logger: n.log,
	})
	if err != nil {
		return err
	}
	n.onStop(func() { ck.Close() })
	n.files = files{n.client}
	// /v1/fs and /v1/dir for the CLI, and the frontends' drives: all
	// over one write-behind of new files' links (its journal replayed
	// now), so each sees the others' pending files. Closed before the
	// grid client (stops run in reverse).
	behind, err := vdrive.OpenBehind(vdrive.GridStore(n.client), vdrive.BehindConfig{
		Dir: p.Node.StateDir, Delay: p.Client.LinkWriteBehind.D(), Logger: n.log.Named("vdrive"),
	})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	n.onStop(func() { behind.Close() })
	n.store = behind
	n.checker = ck
	return nil
}

// startAPI starts the node's local HTTP API: the status page, /v1/status
// and /metrics on every node, the file routes on a client.
func (n *Node) startAPI() error {
	p := n.prof
	token, err := ensureToken(p.Client.APITokenFile)
	if err != nil {
		return fmt.Errorf("client.api_token_file: %w", err)
	}
	if err := n.registerMetrics(); err != nil {
		return err
	}
	n.api, err = api.Start(api.Config{
		Listen: p.APIListen(), Token: token, Files: n.files, Store: n.store, Checker: n.checker,
		Status: n.status, Metrics: n.metrics, Counters: n.rateCounters, Logger: n.log,
	})
	if err != nil {
		// Name the profile line that set the address (a port in use is the
		// usual cause: another node's profile has the same one).
		return p.Errorf(p.APIListenKey(), "%v", err)
	}
	n.onStop(func() { n.api.Close() })
	n.info.APIURL = n.api.URL()
	n.info.TokenFile = p.Client.APITokenFile
	return nil
}

// gridServers turns the server list into the grid client's servers.
func (n *Node) gridServers() []grid.Server {
	list := n.list.Servers()
	out := make([]grid.Server, 0, len(list))
	for _, s := range list {
		if len(s.Addresses) == 0 {
			continue
		}
		// Free space counts only from a live announcement: a static
		// server never announced, or one known from the cache, is taken
		// as having room (grid.Server.SpaceKnown).
		out = append(out, grid.Server{NodeID: s.NodeID, Addr: s.Addresses[0],
			FreeSpace: s.FreeSpace, SpaceKnown: !s.Cached && !s.ExpiresAt.IsZero()})
	}
	return out
}

// Grid is the node's grid client, for services built on it (the vdrive
// and its frontends); nil when the node runs no client.
func (n *Node) Grid() *grid.Client { return n.client }

// Servers is the client's current server list (nil when the node runs no
// client).
func (n *Node) Servers() []introducer.Server {
	if n.list == nil {
		return nil
	}
	return n.list.Servers()
}

// WaitServers blocks until the client knows at least k storage servers.
func (n *Node) WaitServers(ctx context.Context, k int) error {
	if n.list == nil {
		return errors.New("node runs no client")
	}
	return n.list.WaitFor(ctx, k)
}

// files adapts the grid client to the API.
type files struct{ c *grid.Client }

func (f files) Upload(ctx context.Context, r io.Reader, size int64) (string, error) {
	c, err := f.c.Upload(ctx, r, size, nil)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

func (f files) Open(ctx context.Context, c cap.Cap) (api.File, error) {
	file, err := f.c.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	return file, nil
}

// lastSeen remembers when each server's announcement last changed.
type lastSeen struct {
	mu sync.Mutex
	at map[string]time.Time
	sq map[string]uint64
}

func newLastSeen() *lastSeen {
	return &lastSeen{at: map[string]time.Time{}, sq: map[string]uint64{}}
}

// get is when the server's announcement of sequence seq was first seen:
// now if the watch has not taken it in yet (the list changed a moment
// ago and its goroutine has not run: status read right after must not
// show a server announced as never seen).
func (l *lastSeen) get(id string, seq uint64) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq != 0 && seq != l.sq[id] {
		l.sq[id] = seq
		l.at[id] = time.Now().UTC()
	}
	return l.at[id]
}

func (l *lastSeen) watch(list *introducer.ServerList) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for {
			ch := list.Changed()
			now := time.Now().UTC()
			l.mu.Lock()
			for _, s := range list.Servers() {
				if s.Sequence != 0 && s.Sequence != l.sq[s.NodeID] {
					l.sq[s.NodeID] = s.Sequence
					l.at[s.NodeID] = now
				}
			}
			l.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// loadOrCreateSecret reads a 32-byte secret, making it on first start.
func loadOrCreateSecret(path string) ([]byte, error) {
	s, err := identity.LoadSecret(path)
	if errors.Is(err, os.ErrNotExist) {
		s, err = identity.CreateSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", path, err)
	}
	return s, nil
}

// probeInterval is how often a client re-tries the servers whose last
// contact was a fault, for the status page and the servers_connected gauge.
const probeInterval = 5 * time.Second

func (n *Node) probeFailing(ctx context.Context) error {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.client.ProbeFailing(ctx)
		}
	}
}
