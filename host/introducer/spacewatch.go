package introducer

import (
	"context"
	"math"
	"sync"
	"time"
)

// FreeSpaceUnknown is the free space a storage node announces when it
// cannot read it (its backend's Space failed: a statfs error, a storage
// folder gone). Clients take it as room, as they take a server never
// announced: only a figure says a server is full. It is the largest
// figure, so clients that predate it see room too (announcing 0 made every
// client skip the node as FULL until a read succeeded again).
const FreeSpaceUnknown uint64 = math.MaxUint64

// FreeSpaceKnown reports whether a server's free-space figure tells its
// free space: it was announced (not a static server never announced,
// static with no expiry, whose figure is 0 for want of one) and is not
// FreeSpaceUnknown. Sums and displays of servers' free space (df and the
// WebDAV quota of a client's frontends, tarn status, the status page, the
// metrics) leave unknown figures out rather than count them as 16 EiB or
// 0. Placement needs no such test: an unknown figure is room
// (placement.Room).
func FreeSpaceKnown(free uint64, static bool, expiresAt time.Time) bool {
	return (!static || !expiresAt.IsZero()) && free != FreeSpaceUnknown
}

// Free returns the free space s announced, and whether it is known
// (FreeSpaceKnown). A server known from the cache has the figure it last
// announced.
func (s Server) Free() (uint64, bool) {
	return s.FreeSpace, FreeSpaceKnown(s.FreeSpace, s.Static, s.ExpiresAt)
}

// Defaults of SpaceWatchConfig.
const (
	DefaultSpaceEvery  = 20 * time.Second
	DefaultSpaceMinGap = 10 * time.Second
	// A change of the free space is worth an announcement when it is at
	// least spaceFrac of the figure last announced and at least
	// spaceMinStep bytes, or at least spaceBigStep bytes, or when the node
	// becomes full (0 free above its reserve) or stops being full.
	spaceFrac    = 10 // percent
	spaceMinStep = 64 << 20
	spaceBigStep = 4 << 30
)

// SpaceWatchConfig configures a SpaceWatch.
type SpaceWatchConfig struct {
	// Free reads the free space the node announces (what it accepts above
	// its reserve). Required.
	Free func(ctx context.Context) (uint64, error)
	// Kick asks every publisher for an announcement now. Required.
	Kick func()
	// Every is the time between two reads of Free (default
	// DefaultSpaceEvery): one backend Space call, cheap.
	Every time.Duration
	// MinGap is the least time between two announcements the watch asks
	// for (default DefaultSpaceMinGap), so a grid of many nodes whose
	// free space swings cannot flood its introducers: at most one extra
	// announcement per node per MinGap, and only on a material change.
	MinGap time.Duration
}

// SpaceWatch re-announces a storage node soon after its free space
// changes materially, instead of at the next interval (10 minutes): a
// node that filled up is seen FULL by clients within Every, and at once
// after it refused a put for lack of space (Refused). Pass its FreeSpace
// as PublisherConfig.FreeSpace, so it knows what was last announced.
type SpaceWatch struct {
	cfg     SpaceWatchConfig
	refused chan struct{}

	mu        sync.Mutex
	announced uint64 // the free space in the last announcement
	known     bool   // whether any was made
	failing   string // the error of the last read for one, if it failed
	lastKick  time.Time
	kicks     uint64
}

// NewSpaceWatch makes a watch; Run starts it.
func NewSpaceWatch(cfg SpaceWatchConfig) *SpaceWatch {
	if cfg.Every <= 0 {
		cfg.Every = DefaultSpaceEvery
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = DefaultSpaceMinGap
	}
	return &SpaceWatch{cfg: cfg, refused: make(chan struct{}, 1)}
}

// FreeSpace reads the free space for an announcement (within ctx) and
// remembers it as the figure announced. A failed read announces
// FreeSpaceUnknown; onErr, if set, is told why once per change: when the
// reads start failing or fail another way, not at every announcement
// (each introducer's publisher asks at each of its announcements).
func (w *SpaceWatch) FreeSpace(ctx context.Context, onErr func(error)) func() uint64 {
	return func() uint64 {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		free, err := w.cfg.Free(ctx)
		tell := false
		w.mu.Lock()
		if err != nil {
			free = FreeSpaceUnknown
			tell = err.Error() != w.failing
			w.failing = err.Error()
		} else {
			w.failing = ""
		}
		w.announced, w.known = free, true
		w.mu.Unlock()
		if tell && onErr != nil {
			onErr(err)
		}
		return free
	}
}

// Refused tells the watch that the node refused a put for lack of space:
// it reads the free space at once and announces it if it differs from
// the figure announced (within MinGap of the last announcement it asked
// for, it waits for the gap's end).
func (w *SpaceWatch) Refused() {
	select {
	case w.refused <- struct{}{}:
	default:
	}
}

// Kicks counts the announcements the watch asked for.
func (w *SpaceWatch) Kicks() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kicks
}

// material reports whether free space moving from old to cur is worth an
// announcement.
func material(old, cur uint64) bool {
	if (old == 0) != (cur == 0) {
		return true // became full, or no longer full
	}
	if (old == FreeSpaceUnknown) != (cur == FreeSpaceUnknown) {
		return true // reads of it started or stopped failing
	}
	d := max(old, cur) - min(old, cur)
	return d >= spaceBigStep || (d >= spaceMinStep && d*100 >= old*spaceFrac)
}

// Run watches until ctx ends.
func (w *SpaceWatch) Run(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.Every)
	defer tick.Stop()
	var due <-chan time.Time // a kick held back by MinGap
	var dueTimer *time.Timer
	heldRefusal := false // a refusal held back with it: still counts at the gap's end
	defer func() {
		if dueTimer != nil {
			dueTimer.Stop()
		}
	}()
	for {
		refused := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-w.refused:
			refused = true
		case <-due:
			due, dueTimer = nil, nil
			refused, heldRefusal = heldRefusal, false
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cur, err := w.cfg.Free(rctx)
		cancel()
		if err != nil {
			// Reads that start failing are a material change, as one
			// that works after them is: the announcement (whose own read
			// fails too) says FreeSpaceUnknown and logs why, within
			// MinGap rather than at the next interval (10 minutes).
			cur = FreeSpaceUnknown
		}
		w.mu.Lock()
		want := w.known && (material(w.announced, cur) || (refused && cur != w.announced))
		wait := w.cfg.MinGap - time.Since(w.lastKick)
		if want && wait <= 0 {
			w.lastKick = time.Now()
			w.kicks++
		}
		w.mu.Unlock()
		switch {
		case !want:
		case wait <= 0:
			w.cfg.Kick()
		case due == nil:
			dueTimer = time.NewTimer(wait)
			due = dueTimer.C
			fallthrough
		default:
			heldRefusal = heldRefusal || refused
		}
	}
}
