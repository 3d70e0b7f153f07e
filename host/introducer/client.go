package introducer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer/introducerpb"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/sdk/transport"
)

// Dialer opens a gRPC connection to one introducer. It should return only
// once the connection is up (as nodelink.DialGRPC does), so a down
// introducer is noticed at once.
type Dialer func(ctx context.Context) (*grpc.ClientConn, error)

// NodelinkDialer dials the introducer at node address addr over tr with
// the node's certificate, pinned to the address's key hash, proving grid
// membership when gridSecret is set.
func NodelinkDialer(tr transport.Transport, addr string, cert tls.Certificate, gridSecret []byte) Dialer {
	return func(ctx context.Context) (*grpc.ClientConn, error) {
		var opts []grpc.DialOption
		if gridSecret != nil {
			proof, err := nodelink.GridProof(gridSecret, cert)
			if err != nil {
				return nil, fmt.Errorf("introducer %s: %w", addr, err)
			}
			opts = append(opts, grpc.WithPerRPCCredentials(proof))
		}
		cc, err := nodelink.DialGRPC(ctx, tr, addr, cert, opts...)
		if err != nil {
			return nil, fmt.Errorf("introducer: %w", err)
		}
		return cc, nil
	}
}

// Backoff is the wait between reconnection attempts: Min, doubling up to
// Max, with ±25% jitter so a grid's nodes do not reconnect in step after
// an introducer restart. After the introducer refused the node (another
// grid, or not a member: a wrong grid secret, which only a restart with
// the right one mends) it waits Refused, default the larger of Max and a
// minute.
type Backoff struct{ Min, Max, Refused time.Duration }

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = time.Second
	}
	if b.Max < b.Min {
		b.Max = max(time.Minute, b.Min)
	}
	if b.Refused <= 0 {
		b.Refused = max(b.Max, time.Minute)
	}
	return b
}

func (b Backoff) next(d time.Duration) time.Duration {
	return min(2*d, b.Max)
}

// jitterless is how a wait is logged: the back-off step as text ("500ms",
// "30s"; the jitter aside), not nanoseconds in JSON logs.
func jitterless(d time.Duration) string { return d.String() }

func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(jitter(d))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watchConn closes lost when cc stops being ready, so a session ends and
// its owner redials with its own back-off (gRPC's own waits up to 2 min).
func watchConn(ctx context.Context, cc *grpc.ClientConn) <-chan struct{} {
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		for {
			s := cc.GetState()
			if s != connectivity.Ready {
				return
			}
			if !cc.WaitForStateChange(ctx, s) {
				return
			}
		}
	}()
	return lost
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Identity   *identity.Identity
	Introducer Dialer
	Grid       string
	Service    string // default ServiceStorage
	Addresses  []string
	Version    string
	Nickname   string
	// FreeSpace reports the bytes the server can accept, read at each
	// announcement; nil announces 0.
	FreeSpace func() uint64
	// Interval between announcements; default 10 minutes. Lifetime is how
	// long each stays valid; default 3 intervals, so two may be lost.
	Interval time.Duration
	Lifetime time.Duration
	Backoff  Backoff
	Logger   hclog.Logger
	// Name names the introducer in logs (its URL); optional.
	Name string
}

// Publisher keeps a node's announcement on one introducer: it publishes on
// connecting, then every interval and when kicked, and reconnects with
// back-off when the introducer goes away.
type Publisher struct {
	cfg  PublisherConfig
	log  hclog.Logger
	kick chan struct{}

	mu        sync.Mutex
	seq       uint64
	published atomic.Uint64
	lastErr   atomic.Pointer[error]
	link      *link
}

// NewPublisher checks cfg and makes a publisher; Run starts it.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Identity == nil || cfg.Introducer == nil || cfg.Grid == "" {
		return nil, errors.New("introducer publisher: identity, introducer and grid are required")
	}
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("introducer publisher: no addresses to announce")
	}
	if cfg.Service == "" {
		cfg.Service = ServiceStorage
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Minute
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 3 * cfg.Interval
	}
	if cfg.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("introducer publisher: lifetime %s is above %s", cfg.Lifetime, MaxLifetime)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	// Check now what every subscriber will check, so a bad address is a
	// start-up error and not a silent drop.
	if _, err := open(mustSign(cfg, 1), time.Now()); err != nil {
		return nil, fmt.Errorf("introducer publisher: %w", err)
	}
	return &Publisher{cfg: cfg, log: cfg.Logger.Named("publisher"), kick: make(chan struct{}, 1), link: newLink(time.Now())}, nil
}

func mustSign(cfg PublisherConfig, seq uint64) *introducerpb.SignedAnnouncement {
	now := time.Now()
	sa, err := Sign(cfg.Identity, Record{
		Addresses: cfg.Addresses, Grid: cfg.Grid, Service: cfg.Service, Version: cfg.Version,
		Nickname: cfg.Nickname, Sequence: seq, IssuedAt: now, ExpiresAt: now.Add(cfg.Lifetime),
	})
	if err != nil {
		return &introducerpb.SignedAnnouncement{}
	}
	return sa
}

// Kick asks for an announcement soon (free space changed, say).
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Published counts announcements the introducer accepted.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Link is the publisher's link to its introducer now.
func (p *Publisher) Link() LinkState { return p.link.get() }

// LastError is the last failure, or nil after a success.
func (p *Publisher) LastError() error {
	if e := p.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// record signs the next announcement. Sequence numbers are the issue time
// in microseconds, and above the last one: they grow across restarts
// without any state on disk.
func (p *Publisher) record() (*introducerpb.SignedAnnouncement, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.seq = max(p.seq+1, uint64(now.UnixMicro()))
	var free uint64
	if p.cfg.FreeSpace != nil {
		free = p.cfg.FreeSpace()
	}
	sa, err := Sign(p.cfg.Identity, Record{
		Addresses: p.cfg.Addresses,
		Grid:      p.cfg.Grid,
		Service:   p.cfg.Service,
		FreeSpace: free,
		Version:   p.cfg.Version,
		Nickname:  p.cfg.Nickname,
		Sequence:  p.seq,
		IssuedAt:  now,
		ExpiresAt: now.Add(p.cfg.Lifetime),
	})
	return sa, p.seq, err
}

// Run publishes until ctx ends, and returns ctx's error.
func (p *Publisher) Run(ctx context.Context) error {
	wait := p.cfg.Backoff.Min
	for {
		ok, err := p.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok {
			wait = p.cfg.Backoff.Min
		}
		if ref := refusal(err); ref != nil {
			// Not a fault of the link: retrying soon cannot help, and
			// "unreachable" would send the operator to the network.
			p.lastErr.Store(&ref)
			p.link.down(time.Now(), ref, true)
			p.log.Error(ref.Error(), "introducer", p.cfg.Name, "error", err, "retry_in", p.cfg.Backoff.Refused.String())
			if !sleep(ctx, p.cfg.Backoff.Refused) {
				return ctx.Err()
			}
			continue
		}
		p.lastErr.Store(&err)
		p.link.down(time.Now(), err, false)
		p.log.Warn("introducer unreachable; retrying", "introducer", p.cfg.Name, "error", err, "retry_in", jitterless(wait))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = p.cfg.Backoff.next(wait)
	}
}

// session runs one connection: it returns whether anything was published,
// and why it ended.
func (p *Publisher) session(ctx context.Context) (bool, error) {
	cc, err := p.cfg.Introducer(ctx)
	if err != nil {
		return false, err
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := watchConn(ctx, cc)
	client := introducerpb.NewIntroducerClient(cc)
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	did := false
	for {
		sa, seq, err := p.record()
		if err != nil {
			return did, err
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = client.Publish(rctx, &introducerpb.PublishRequest{Announcement: sa})
		rcancel()
		if err != nil {
			return did, fmt.Errorf("publish: %w", err)
		}
		did = true
		p.published.Add(1)
		p.lastErr.Store(nil)
		p.link.up(time.Now())
		p.log.Debug("published", "seq", seq)
		select {
		case <-ctx.Done():
			return did, ctx.Err()
		case <-lost:
			return did, errors.New("connection to the introducer lost")
		case <-tick.C:
		case <-p.kick:
		}
	}
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Grid        string
	Service     string // default ServiceStorage
	Introducers []Dialer
	// List receives the servers; it may hold static servers already.
	List    *ServerList
	Backoff Backoff
	Logger  hclog.Logger
	// Now is the clock used to judge expiry (tests); default time.Now.
	Now func() time.Time
	// Names name the introducers in logs (their URLs), in the order of
	// Introducers; optional.
	Names []string
	// CacheFile keeps the last verified announcements across restarts
	// (cache.go); empty keeps none. CacheEvery is the least time between
	// two writes of it (default 2 s).
	CacheFile  string
	CacheEvery time.Duration
}

// Subscriber keeps a ServerList up to date from one or more introducers,
// verifying every record itself: an introducer can hide servers but not
// invent or alter them.
type Subscriber struct {
	cfg SubscriberConfig
	log hclog.Logger

	mu      sync.Mutex
	accept  uint64
	dropped map[string]uint64
	synced  int           // introducers whose current snapshot arrived
	refused map[int]error // introducers whose last session was a membership refusal
	links   []*link       // by introducer
	// syncKick wakes saveCache when an introducer's snapshot arrives.
	syncKick chan struct{}
}

// NewSubscriber checks cfg and makes a subscriber; Run starts it.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Grid == "" || cfg.List == nil {
		return nil, errors.New("introducer subscriber: grid and list are required")
	}
	if cfg.Service == "" {
		cfg.Service = ServiceStorage
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	s := &Subscriber{cfg: cfg, log: cfg.Logger.Named("subscriber"), dropped: map[string]uint64{}, refused: map[int]error{}, syncKick: make(chan struct{}, 1)}
	for range cfg.Introducers {
		s.links = append(s.links, newLink(time.Now()))
	}
	return s, nil
}

// Links is the subscriber's link to each introducer now, in the order of
// Introducers.
func (s *Subscriber) Links() []LinkState {
	out := make([]LinkState, len(s.links))
	for i, l := range s.links {
		out[i] = l.get()
	}
	return out
}

func (s *Subscriber) name(i int) string {
	if i < len(s.cfg.Names) {
		return s.cfg.Names[i]
	}
	return fmt.Sprint(i)
}

// Stats counts records taken into the list and dropped (by Reason), and
// how many introducers are connected and synced.
func (s *Subscriber) Stats() (accepted uint64, dropped map[string]uint64, synced int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := make(map[string]uint64, len(s.dropped))
	for k, v := range s.dropped {
		d[k] = v
	}
	return s.accept, d, s.synced
}

// Run follows every introducer and expires lapsed records until ctx ends;
// it returns ctx's error. With no introducers it keeps only the static list.
func (s *Subscriber) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if s.cfg.CacheFile != "" {
		s.loadCache()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.saveCache(ctx)
		}()
	}
	for i, d := range s.cfg.Introducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.follow(ctx, i, d)
		}()
	}
	s.expire(ctx)
	wg.Wait()
	return ctx.Err()
}

func (s *Subscriber) expire(ctx context.Context) {
	for {
		ch := s.cfg.List.Changed()
		// With a cache, a client whose introducers are all out of reach
		// keeps what it verified, as it would after a restart.
		s.mu.Lock()
		keep := s.cfg.CacheFile != "" && len(s.cfg.Introducers) > 0 && s.synced == 0
		s.mu.Unlock()
		var next time.Time
		if keep {
			next = s.cfg.List.ExpireKeeping(s.cfg.Now())
		} else {
			next = s.cfg.List.Expire(s.cfg.Now())
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(max(next.Sub(s.cfg.Now()), time.Millisecond))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-ch:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// Refused returns why an introducer refused this node as a member of the
// grid (its last session ended in a membership refusal), or nil when none
// did. It wraps nodelink.ErrNotMember. A client that knows servers only
// through the introducers learns none while refused, and "0 of 0 servers
// answered" alone would not say why.
func (s *Subscriber) Refused() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range len(s.cfg.Introducers) {
		if err := s.refused[i]; err != nil {
			return err
		}
	}
	return nil
}

// noteSession records whether introducer i's session ended in a
// membership refusal (the introducer answers PermissionDenied).
func (s *Subscriber) noteSession(i int, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gs interface{ GRPCStatus() *status.Status }
	switch {
	case errors.As(err, &gs) && gs.GRPCStatus().Code() == codes.PermissionDenied:
		why := strings.TrimPrefix(gs.GRPCStatus().Message(), nodelink.ErrNotMember.Error()+": ")
		s.refused[i] = fmt.Errorf("introducer %d refused this node: %w: %s", i, nodelink.ErrNotMember, why)
	case errors.Is(err, nodelink.ErrNotMember):
		s.refused[i] = fmt.Errorf("introducer %d refused this node: %w", i, err)
	case ok:
		delete(s.refused, i)
	}
}

func (s *Subscriber) follow(ctx context.Context, i int, dial Dialer) {
	wait := s.cfg.Backoff.Min
	for {
		ok, err := s.session(ctx, i, dial)
		if ctx.Err() != nil {
			return
		}
		s.noteSession(i, ok, err)
		if ok {
			wait = s.cfg.Backoff.Min
		}
		if ref := refusal(err); ref != nil {
			s.links[i].down(time.Now(), ref, true)
			s.log.Error(ref.Error(), "introducer", s.name(i), "error", err, "retry_in", s.cfg.Backoff.Refused.String())
			if !sleep(ctx, s.cfg.Backoff.Refused) {
				return
			}
			continue
		}
		s.links[i].down(time.Now(), err, false)
		s.log.Warn("introducer subscription ended; retrying", "introducer", s.name(i), "error", err, "retry_in", jitterless(wait))
		if !sleep(ctx, wait) {
			return
		}
		wait = s.cfg.Backoff.next(wait)
	}
}

// session follows one subscription; it returns whether the snapshot
// arrived, and why it ended.
func (s *Subscriber) session(ctx context.Context, i int, dial Dialer) (bool, error) {
	cc, err := dial(ctx)
	if err != nil {
		return false, err
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := introducerpb.NewIntroducerClient(cc).Subscribe(ctx, &introducerpb.SubscribeRequest{Grid: s.cfg.Grid, Service: s.cfg.Service})
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	synced := false
	defer func() {
		if synced {
			s.mu.Lock()
			s.synced--
			s.mu.Unlock()
		}
	}()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return synced, fmt.Errorf("subscription: %w", err)
		}
		for _, sa := range msg.GetAnnouncements() {
			s.take(sa)
		}
		if msg.GetSynced() && !synced {
			synced = true
			s.mu.Lock()
			s.synced++
			s.mu.Unlock()
			s.links[i].up(time.Now())
			// The introducer's view replaces the cached one.
			s.cfg.List.DropCached()
			select {
			case s.syncKick <- struct{}{}:
			default:
			}
		}
	}
}

func (s *Subscriber) take(sa *introducerpb.SignedAnnouncement) {
	r, err := Verify(sa, s.cfg.Grid, s.cfg.Now())
	if err == nil && r.Service != s.cfg.Service {
		err = fmt.Errorf("announcement of %s: %w: service %q", r.NodeID, ErrMalformed, r.Service)
	}
	if err == nil {
		err = s.cfg.List.UpdateSigned(r, sa)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// With several introducers the same record arrives more than once:
		// stale drops are normal and not worth a warning.
		if errors.Is(err, ErrStale) {
			s.log.Trace("dropped announcement", "reason", Reason(err), "error", err)
		} else {
			s.log.Warn("dropped announcement", "reason", Reason(err), "error", err)
		}
		s.dropped[Reason(err)]++
		return
	}
	s.accept++
}
