// Package grid is the client's view of the grid: connections to storage
// servers, immutable-file upload (placement by permuted ring and servers of
// happiness, spooling for convergent keys, replacement of failed servers)
// and download (verified, range-reading, skipping hung and corrupt
// servers). It is a library: the node's HTTP API, the CLI and the vdrive
// call it. docs/upload-download.md describes what it does on the wire.
package grid

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/placement"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/transport"
)

// Defaults for Config fields left zero.
const (
	DefaultK             = 3
	DefaultH             = 7
	DefaultN             = 10
	DefaultServerTimeout = 30 * time.Second
	DefaultParallel      = 16
)

// LeaseTag is the tagged-hash purpose of per-server lease secrets.
const LeaseTag = "tarn 2026 grid lease secret v1"

// Sentinel errors callers branch on (errors.Is).
var (
	// ErrNotHappy: an upload could not spread shares over H servers.
	ErrNotHappy = placement.ErrNotHappy
	// ErrNotEnoughShares: a download found fewer than K good shares.
	ErrNotEnoughShares = chk.ErrNotEnoughShares
	// ErrNoShares: every server asked answered, and none holds a share of
	// the file: it was never stored on this grid (or is gone from it). It
	// comes wrapped with ErrNotEnoughShares.
	ErrNoShares = errors.New("no server holds any share of the file")
	// ErrNotReadable: the cap does not allow reading (a verify cap).
	ErrNotReadable = errors.New("cap cannot be read")
	// ErrSize: the data did not have the size the caller declared.
	ErrSize = errors.New("size differs from the declared size")
)

// Config configures a Client.
type Config struct {
	// Transport dials storage servers. Required.
	Transport transport.Transport
	// Cert is this node's TLS certificate (host/identity). Required.
	Cert tls.Certificate
	// GridSecret proves grid membership to servers; nil can only read
	// from servers with open reads.
	GridSecret []byte
	// GridName is the grid's name (grid.name), used in the error that says
	// a server refused this node's membership.
	GridName string
	// Codec erasure-codes segments. Required.
	Codec codec.Codec
	// Servers lists the storage servers. Required.
	Servers ServerSource
	// K shares rebuild a file, uploads need H distinct servers, N shares
	// are made. All zero: 3, 7, 10.
	K, H, N int
	// SegmentSize is the plaintext segment size (default
	// chk.DefaultSegmentSize).
	SegmentSize int
	// Convergence is the convergence secret: uploads get convergent keys
	// (same file, same secret: same cap; needs a spool pass). Nil: random
	// keys, and uploads of known size stream without spooling.
	Convergence []byte
	// LeaseSecret is the master secret from which per-server lease secrets
	// are derived (to renew or cancel leases later). Nil: a random one per
	// Client.
	LeaseSecret []byte
	// TempDir holds upload spool files ("" = os.TempDir()).
	TempDir string
	// ServerTimeout bounds each request to a server and each silence of a
	// stream; a server that takes longer is treated as failed (default
	// DefaultServerTimeout).
	ServerTimeout time.Duration
	// Parallel bounds how many servers are asked at once when looking for
	// shares or space (default DefaultParallel).
	Parallel int
	// Unlisted, when set, says why the server list may lack servers, as
	// an error wrapping nodelink.ErrNotMember (an introducer refused this
	// node: introducer.Subscriber.Refused), or nil. Explain names it when
	// an operation lacked servers and the list is empty.
	Unlisted func() error
	Logger   hclog.Logger
}

// Client uploads and downloads files on a grid. It is safe for concurrent
// use; Close it to drop its connections.
type Client struct {
	cfg    Config
	log    hclog.Logger
	codec  string // codec name
	params chk.Params
	place  placement.Params
	stats  counters

	mu     sync.Mutex
	conns  map[string]*conn
	closed bool
	bg     sync.WaitGroup // background aborts
}

// conn is the pooled connection to one server.
type conn struct {
	mu       sync.Mutex // held while dialing
	addr     string
	cl       *storageclient.Client
	failedAt time.Time
	// okAt is the last answer from the server (any answer, "not found"
	// included) and lastErr the last fault: the status page's health.
	okAt    time.Time
	lastErr string
	// refused is the last refusal of the link to this server for a
	// reason of security, cleared by the next request it answers.
	refused   *RefusedError
	refusedAt time.Time
}

// RefusedError says a link to a storage server was refused for a reason of
// security, not of availability: the server refused this node as a member
// of the grid (the node's grid secret is not the server's;
// nodelink.ErrNotMember), or the node at the server's address presented
// another key than the address pins (nodelink.ErrKeyMismatch: a stale
// address or someone in the way). It unwraps to the cause.
type RefusedError struct {
	Server string // the server's node id
	Grid   string // Config.GridName; may be empty
	Err    error
}

func (e *RefusedError) Error() string {
	if errors.Is(e.Err, nodelink.ErrKeyMismatch) {
		return fmt.Sprintf("storage server %s refused: %v (a stale address, or someone in the way)", e.Server, e.Err)
	}
	g := "this grid"
	if e.Grid != "" {
		g = fmt.Sprintf("grid %q", e.Grid)
	}
	return fmt.Sprintf("storage server %s refused this node: not a member of %s (check grid.secret_file)", e.Server, g)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refusal returns err as a *RefusedError when it is a membership refusal by
// s (recording it), and notes that s answered otherwise.
func (c *Client) refusal(s Server, err error) error {
	var re *RefusedError
	if errors.As(err, &re) {
		return err
	}
	c.mu.Lock()
	cn := c.conns[s.NodeID]
	c.mu.Unlock()
	if err == nil || !(errors.Is(err, nodelink.ErrNotMember) || errors.Is(err, nodelink.ErrKeyMismatch)) {
		if cn != nil && (err == nil || errorKind(err) != KindUnreachable) {
			cn.mu.Lock()
			cn.refused = nil
			cn.mu.Unlock()
		}
		return err
	}
	re = &RefusedError{Server: s.NodeID, Grid: c.cfg.GridName, Err: err}
	if cn != nil {
		cn.mu.Lock()
		cn.refused, cn.refusedAt = re, time.Now()
		cn.mu.Unlock()
	}
	return re
}

// Refusals returns the refusals (RefusedError) by servers in the current
// list within the last minute, in server list order.
func (c *Client) Refusals() []*RefusedError {
	var out []*RefusedError
	for _, s := range c.servers() {
		c.mu.Lock()
		cn := c.conns[s.NodeID]
		c.mu.Unlock()
		if cn == nil {
			continue
		}
		cn.mu.Lock()
		if cn.refused != nil && time.Since(cn.refusedAt) < time.Minute {
			out = append(out, cn.refused)
		}
		cn.mu.Unlock()
	}
	return out
}

// Explain makes an error that lacked servers (ErrNotHappy,
// ErrNotEnoughShares) say why when servers refused this node's membership
// or presented another key than pinned (see RefusedError): the usual cause
// is a wrong grid secret, and "0 of 5 servers answered" alone does not say
// so. Other errors, and errors when no server refused,
// come back unchanged. The result still matches the error's sentinels and
// nodelink.ErrNotMember.
func (c *Client) Explain(err error) error {
	var re *RefusedError
	if err == nil || errors.As(err, &re) ||
		!(errors.Is(err, ErrNotHappy) || errors.Is(err, ErrNotEnoughShares)) {
		return err
	}
	refused := c.Refusals()
	if len(refused) == 0 {
		if c.cfg.Unlisted != nil && len(c.servers()) == 0 {
			if why := c.cfg.Unlisted(); why != nil {
				return &unlisted{why: why, err: err}
			}
		}
		return err
	}
	return &explained{refused: refused, err: err}
}

// unlisted is an error that lacked servers because the server list is
// empty, with the reason (an introducer's refusal).
type unlisted struct{ why, err error }

func (e *unlisted) Error() string   { return e.why.Error() + ": " + e.err.Error() }
func (e *unlisted) Unwrap() []error { return []error{e.err, e.why} }

// explained is an error with the membership refusals that caused it.
type explained struct {
	refused []*RefusedError
	err     error
}

func (e *explained) Error() string {
	s := e.refused[0].Error()
	if n := len(e.refused) - 1; n > 0 {
		s += fmt.Sprintf(", as did %d more server(s)", n)
	}
	return s + ": " + e.err.Error()
}

func (e *explained) Unwrap() []error { return []error{e.err, e.refused[0]} }

// New checks cfg and returns a Client. It dials nothing: connections are
// made on first use and kept.
func New(cfg Config) (*Client, error) {
	if cfg.Transport == nil || cfg.Codec == nil || cfg.Servers == nil {
		return nil, errors.New("grid client: transport, codec and server source are required")
	}
	if len(cfg.Cert.Certificate) == 0 {
		return nil, errors.New("grid client: no node certificate")
	}
	if cfg.GridSecret != nil && len(cfg.GridSecret) != nodelink.GridSecretSize {
		return nil, fmt.Errorf("grid client: grid secret is %d bytes, want %d", len(cfg.GridSecret), nodelink.GridSecretSize)
	}
	if cfg.K == 0 && cfg.H == 0 && cfg.N == 0 {
		cfg.K, cfg.H, cfg.N = DefaultK, DefaultH, DefaultN
	}
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = chk.DefaultSegmentSize
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
	if cfg.LeaseSecret == nil {
		cfg.LeaseSecret = make([]byte, 32)
		if _, err := rand.Read(cfg.LeaseSecret); err != nil {
			return nil, fmt.Errorf("grid client: lease secret: %w", err)
		}
	}
	pp := placement.Params{K: cfg.K, H: cfg.H, N: cfg.N}
	if err := pp.Validate(); err != nil {
		return nil, fmt.Errorf("grid client: %w", err)
	}
	cp := chk.Params{K: cfg.K, N: cfg.N, SegmentSize: cfg.SegmentSize}
	if err := cp.Validate(); err != nil {
		return nil, fmt.Errorf("grid client: %w", err)
	}
	info, err := cfg.Codec.Info(context.Background())
	if err != nil {
		return nil, fmt.Errorf("grid client: codec info: %w", err)
	}
	return &Client{cfg: cfg, log: cfg.Logger.Named("grid"), codec: info.Name, params: cp, place: pp,
		conns: map[string]*conn{}}, nil
}

// Close waits for background aborts and corruption advice, then drops
// every connection.
func (c *Client) Close() error {
	c.bg.Wait() // aborts and advice still use the connections
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = map[string]*conn{}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.mu.Lock()
		if cn.cl != nil {
			cn.cl.Close()
			cn.cl = nil
		}
		cn.mu.Unlock()
	}
	return nil
}

// servers returns the current server list, checked, without duplicates.
func (c *Client) servers() []Server {
	var out []Server
	seen := map[string]bool{}
	for _, s := range c.cfg.Servers.Servers() {
		s, err := s.normalize()
		if err != nil {
			c.log.Warn("skipping server with a bad address", "node", s.NodeID, "error", err)
			continue
		}
		if seen[s.NodeID] {
			continue
		}
		seen[s.NodeID] = true
		out = append(out, s)
	}
	return out
}

// ring orders servers for a storage index.
func ring(si []byte, servers []Server) []Server {
	byID := make(map[string]Server, len(servers))
	ids := make([]string, len(servers))
	for i, s := range servers {
		byID[s.NodeID] = s
		ids[i] = s.NodeID
	}
	out := make([]Server, len(ids))
	for i, id := range placement.Permute(si, ids) {
		out[i] = byID[id]
	}
	return out
}

// do runs fn on the pooled connection to s. When a reused connection
// fails fast (the server restarted, the link broke), fn is run once more on
// a fresh one; failures are recorded by fault.
func (c *Client) do(ctx context.Context, s Server, fn func(*storageclient.Client) error) error {
	cl, fresh, err := c.conn(ctx, s)
	if err != nil {
		return err
	}
	err = fn(cl)
	if err == nil || ctx.Err() != nil {
		if err == nil {
			c.answered(s)
		}
		return c.refusal(s, err)
	}
	c.fault(s, cl, err)
	if k := errorKind(err); fresh || (k != KindUnreachable && k != KindBusy) {
		return c.refusal(s, err)
	}
	if cl, _, err = c.conn(ctx, s); err != nil {
		return err
	}
	if err = fn(cl); err != nil && ctx.Err() == nil {
		c.fault(s, cl, err)
	} else if err == nil {
		c.answered(s)
	}
	return c.refusal(s, err)
}

// conn returns the pooled connection to s, dialing it if needed, and
// whether it is new.
func (c *Client) conn(ctx context.Context, s Server) (*storageclient.Client, bool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, errors.New("grid client is closed")
	}
	cn := c.conns[s.NodeID]
	if cn == nil {
		cn = &conn{}
		c.conns[s.NodeID] = cn
	}
	c.mu.Unlock()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.cl != nil && cn.addr == s.Addr {
		return cn.cl, false, nil
	}
	if cn.cl != nil {
		cn.cl.Close()
		cn.cl = nil
	}
	// Requests get ServerTimeout from the grid client's own deadlines
	// (reqCtx) and the uploader's progress monitor; the storage client's
	// silence watchdog is only a backstop, looser so that a share stream
	// waiting for the encoder is not taken for a hung server.
	cl, err := storageclient.Dial(ctx, c.cfg.Transport, s.Addr, c.cfg.Cert, storageclient.Options{
		GridSecret:  c.cfg.GridSecret,
		CallTimeout: 2 * c.cfg.ServerTimeout,
		DialTimeout: c.cfg.ServerTimeout,
		ChunkSize:   max(64<<10, min(1<<20, c.params.SegmentSize/c.params.K)),
	})
	if err != nil {
		cn.failedAt, cn.lastErr = time.Now(), err.Error()
		c.stats.dialFailures.Add(1)
		c.stats.errorOf(KindUnreachable)
		if errors.Is(err, nodelink.ErrKeyMismatch) {
			re := &RefusedError{Server: s.NodeID, Grid: c.cfg.GridName, Err: err}
			cn.refused, cn.refusedAt = re, time.Now()
			return nil, false, re
		}
		return nil, false, fmt.Errorf("server %s: %w", s.NodeID, err)
	}
	c.stats.dials.Add(1)
	cn.cl, cn.addr = cl, s.Addr
	return cl, true, nil
}

// fault records a failed request to s; when the fault is the server's or
// the link's (not a clear answer such as "not found"), the connection (cl,
// or whichever is pooled when cl is nil) is dropped so the next use
// redials.
func (c *Client) fault(s Server, cl *storageclient.Client, err error) {
	kind := errorKind(err)
	c.stats.errorOf(kind)
	switch kind {
	case KindNotFound, KindNoSpace, KindCorrupt:
		c.answered(s) // a clear answer: the server is alive
		return
	case KindCanceled:
		return
	}
	c.mu.Lock()
	cn := c.conns[s.NodeID]
	c.mu.Unlock()
	if cn == nil {
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.failedAt, cn.lastErr = time.Now(), err.Error()
	if cn.cl != nil && (cl == nil || cn.cl == cl) {
		cn.cl.Close()
		cn.cl = nil
	}
}

// answered records an answer from s.
func (c *Client) answered(s Server) {
	c.mu.Lock()
	cn := c.conns[s.NodeID]
	c.mu.Unlock()
	if cn == nil {
		return
	}
	cn.mu.Lock()
	cn.okAt = time.Now()
	cn.mu.Unlock()
}

// Health is how a storage server has fared with this client: its last
// answer and its last fault (zero times: none yet).
type Health struct {
	LastAnswer  time.Time
	LastFailure time.Time
	LastError   string
}

// Failing says whether the server's last contact was a fault.
func (h Health) Failing() bool { return h.LastFailure.After(h.LastAnswer) }

// ServerHealth returns the health of every server this client has tried,
// by node id.
func (c *Client) ServerHealth() map[string]Health {
	c.mu.Lock()
	conns := make(map[string]*conn, len(c.conns))
	for id, cn := range c.conns {
		conns[id] = cn
	}
	c.mu.Unlock()
	out := make(map[string]Health, len(conns))
	for id, cn := range conns {
		cn.mu.Lock()
		out[id] = Health{LastAnswer: cn.okAt, LastFailure: cn.failedAt, LastError: cn.lastErr}
		cn.mu.Unlock()
	}
	return out
}

// ProbeFailing asks each known server whose last contact was a fault for
// its version, so that a server that is back (a resumed process, a mended
// link) shows so without waiting for the next transfer to try it. It
// returns once every probe has answered or failed.
func (c *Client) ProbeFailing(ctx context.Context) {
	health := c.ServerHealth()
	var wg sync.WaitGroup
	for _, s := range c.servers() {
		if h, ok := health[s.NodeID]; !ok || !h.Failing() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := c.reqCtx(ctx)
			defer cancel()
			c.do(rctx, s, func(cl *storageclient.Client) error {
				_, err := cl.Version(rctx)
				return err
			})
		}()
	}
	wg.Wait()
}

// recentlyFailed reports whether s failed within the last minute.
func (c *Client) recentlyFailed(s Server) bool {
	c.mu.Lock()
	cn := c.conns[s.NodeID]
	c.mu.Unlock()
	if cn == nil {
		return false
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return !cn.failedAt.IsZero() && time.Since(cn.failedAt) < time.Minute
}

// reqCtx bounds one request to a server by ServerTimeout.
func (c *Client) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.ServerTimeout)
}

// leaseSecret is this client's lease secret for one file on one server.
func (c *Client) leaseSecret(si []byte, nodeID string) []byte {
	h := tagged.Hash(LeaseTag, c.cfg.LeaseSecret, si, []byte(nodeID))
	return h[:]
}

// Error kinds counted in Stats.Errors.
const (
	KindTimeout     = "timeout"
	KindUnreachable = "unreachable"
	KindNotFound    = "not-found"
	KindNoSpace     = "no-space"
	KindBusy        = "busy"
	KindNotMember   = "not-member"
	KindCorrupt     = "corrupt"
	KindCanceled    = "canceled"
	KindServer      = "server"
	KindNotHappy    = "not-happy"
	KindNotEnough   = "not-enough-shares"
	KindOther       = "other"
)

func errorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotHappy):
		return KindNotHappy
	case errors.Is(err, chk.ErrNotEnoughShares):
		return KindNotEnough
	case errors.Is(err, chk.ErrCorrupt):
		return KindCorrupt
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, storage.ErrNotFound):
		return KindNotFound
	case errors.Is(err, storage.ErrNoSpace):
		return KindNoSpace
	case errors.Is(err, storageclient.ErrBusy):
		return KindBusy
	case errors.Is(err, nodelink.ErrNotMember):
		return KindNotMember
	case errors.Is(err, storage.ErrExists), errors.Is(err, storage.ErrRange),
		errors.Is(err, storage.ErrClosed), errors.Is(err, storage.ErrConflict):
		return KindServer
	}
	return KindUnreachable
}
