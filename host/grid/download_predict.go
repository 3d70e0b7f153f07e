package grid

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/placement"
)

// Small downloads without a locate. An upload places share i on the
// servers of the storage index's permuted ring by placement.Plan; when
// every server was writable and held nothing of the file, that plan
// depends on the ring alone, and on which servers announced too little
// free space for a share (the upload leaves those out: upload_room.go).
// So a client whose server list and announcements are the ones the file
// was uploaded under knows which server holds which share without
// asking. For a file whose shares fit one metadata window (each read
// whole in one call: 4 KiB files, and up to about 90 KiB at 3-of-5 and
// 1 MiB segments), Open reads K shares straight from their predicted
// holders, at once, and decodes and checks the file's one segment before
// it returns: K read_share calls and no list_shares, where the locate
// costs one list_shares per server first.
//
// Anything out of the ordinary makes Open take the full locate (the
// path without a prediction): a predicted read that misses (the share is
// not there: the server list changed since the upload, or repair moved
// it), fails, or returns a share that fails a check; or reads that have not
// all answered after hedgeDelay (a server that hangs). The locate then
// does not wait for the servers whose predicted read is still out, and
// its grace is shortened by the time spent, so a hung holder costs no
// more than it does without a prediction. Shares read whole by the
// prediction are kept for the locate's decoder (they are checked there
// again, as every share is); a holder whose share was corrupt is left
// out. Every byte is still checked against the cap: a prediction only
// chooses whom to ask.
//
// A client whose predictions keep missing (its server list is not the
// one files were uploaded under) stops predicting for a while: see
// predictScore.

// prediction is the K shares a small download reads without a locate.
type prediction struct {
	shares  []int
	holders []holder
}

// predictReady reports whether a predicted read may go to s: the client
// holds a connection to it that was not refused and whose last request
// did not fail. A server not connected, or failing, is not predicted (the
// locate, which dials and survives hangs, finds its shares instead).
func (c *Client) predictReady(s Server) bool {
	c.mu.Lock()
	cn := c.conns[s.NodeID]
	c.mu.Unlock()
	if cn == nil || c.hung().has(s.NodeID, time.Now()) {
		return false
	}
	// cn.mu is held while dialing (then the link is not ready) and for a
	// moment by every request (try again a few times).
	locked := false
	for i := 0; i < 4 && !locked; i++ {
		if locked = cn.mu.TryLock(); !locked {
			runtime.Gosched()
		}
	}
	if !locked {
		return false
	}
	defer cn.mu.Unlock()
	return cn.cl != nil && cn.addr == s.Addr && cn.refused == nil && (cn.failedAt.IsZero() || cn.okAt.After(cn.failedAt))
}

// predict returns the shares of a small file to read without a locate,
// or nil when the file is not small, the client is not predicting, or
// fewer than K predicted holders are ready.
func (c *Client) predict(v cap.CHK) *prediction {
	l, err := chk.NewLayout(chk.Params{K: v.K, N: v.N, SegmentSize: c.cfg.SegmentSize}, v.Size)
	if err != nil || l.Segments != 1 || l.ShareSize > metaWindow {
		return nil
	}
	if !c.predicting() {
		return nil
	}
	si := v.StorageIndex()
	servers := ring(si[:], c.servers())
	if len(servers) < v.K {
		return nil
	}
	// The upload left out the servers announced too full for a share of
	// this file while H others remained (upload_room.go): the same rule,
	// with this client's H (the grid's, as the uploader's), decides which
	// servers the plan may write to. Announcements that changed since the
	// upload make the prediction miss: the locate follows.
	full := roomless(servers, l.ShareSize, min(max(c.place.H, v.K), v.N))
	ps := make([]placement.Server, len(servers))
	pos := make(map[string]int, len(servers))
	for i, s := range servers {
		ps[i] = placement.Server{ID: s.NodeID, Writable: !full[i]}
		pos[s.NodeID] = i
	}
	// H=K: the uploader's H only decides whether its upload succeeded.
	pl, err := placement.Plan(placement.Params{K: v.K, H: v.K, N: v.N}, ps, nil)
	if err != nil {
		return nil
	}
	type cand struct{ sh, pos int }
	cands := make([]cand, 0, len(pl.Writes))
	for sh, id := range pl.Writes {
		cands = append(cands, cand{sh, pos[id]})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].pos != cands[j].pos {
			return cands[i].pos < cands[j].pos
		}
		return cands[i].sh < cands[j].sh
	})
	p := &prediction{}
	used := map[int]bool{}
	for _, x := range cands {
		if len(p.shares) == v.K {
			break
		}
		if used[x.pos] || !c.predictReady(servers[x.pos]) {
			continue
		}
		used[x.pos] = true
		p.shares = append(p.shares, x.sh)
		p.holders = append(p.holders, holder{servers[x.pos], x.pos})
	}
	if len(p.shares) < v.K {
		return nil
	}
	return p
}

// hedgeDelay is how long Open waits for the predicted reads before it
// starts the locate too.
func (c *Client) hedgeDelay() time.Duration {
	return min(100*time.Millisecond, c.cfg.ServerTimeout/8)
}

// attempt is one predicted read of a small file.
type attempt struct {
	src    *shareSource
	f      *File // once the file decoded and checked
	err    error
	done   chan struct{}
	cancel context.CancelFunc

	mu      sync.Mutex
	pending map[string]bool // servers whose read has not answered
}

// startAttempt reads the predicted shares at once, then decodes and checks
// the file's segment from them, in the background.
func (c *Client) startAttempt(ctx context.Context, v cap.CHK, p *prediction) *attempt {
	src := newShareSource(c, v)
	src.done = true // no locate: a share not predicted is not held
	for i, sh := range p.shares {
		src.add(sh, p.holders[i])
	}
	actx, cancel := context.WithCancel(ctx)
	a := &attempt{src: src, done: make(chan struct{}), cancel: cancel, pending: map[string]bool{}}
	for _, h := range p.holders {
		a.pending[h.s.NodeID] = true
	}
	go func() {
		defer close(a.done)
		defer cancel()
		errs := make([]error, len(p.shares))
		var wg sync.WaitGroup
		for i, sh := range p.shares {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = src.window(actx, sh, 0, metaWindow)
				a.mu.Lock()
				delete(a.pending, p.holders[i].s.NodeID)
				a.mu.Unlock()
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			a.err = err
			return
		}
		// Every read below is served by the windows just fetched (a
		// share not predicted is not held: no call). The File and its
		// decoder keep ctx (Open's): their later reads are of cached
		// bytes.
		f := c.newFile(ctx, v, src)
		a.f = f
		if err := f.start(ctx); err != nil {
			a.err = err
			return
		}
		if l := f.dec.Layout(); l.Segments != 1 || l.ShareSize > metaWindow {
			// Not the layout predicted (another segment size): its blocks
			// would be read without a locate to fall back on.
			a.err = fmt.Errorf("download %s: %d segments of %d-byte shares: not a small file", src.si, l.Segments, l.ShareSize)
			return
		}
		var b [1]byte
		if _, err := f.dec.ReadAtContext(actx, b[:], 0); err != nil {
			a.err = err
			return
		}
		if len(f.Problems()) > 0 {
			a.err = fmt.Errorf("download %s: a predicted share failed", src.si)
		}
	}()
	return a
}

// suspects are the servers whose predicted read has not answered yet.
func (a *attempt) suspects() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool, len(a.pending))
	for id := range a.pending {
		out[id] = true
	}
	return out
}

// ok reports whether the attempt is over and gave the file.
func (a *attempt) ok() bool {
	select {
	case <-a.done:
		return a.err == nil
	default:
		return false
	}
}

// openPredicted opens a small file from its predicted holders, falling
// back to the locate as described above.
func (c *Client) openPredicted(ctx context.Context, v cap.CHK, p *prediction) (*File, error) {
	start := time.Now()
	a := c.startAttempt(ctx, v, p)
	hedge := time.NewTimer(c.hedgeDelay())
	defer hedge.Stop()
	select {
	case <-a.done:
		if a.err == nil {
			c.predicted(true)
			return a.f, nil
		}
		c.log.Debug("predicted read missed; locating", "index", a.src.si.String(), "error", a.err)
	case <-hedge.C:
		c.log.Debug("predicted read slow; locating", "index", a.src.si.String())
	case <-ctx.Done():
		a.cancel()
		<-a.done
		return nil, fmt.Errorf("download %s: %w", a.src.si, ctx.Err())
	}

	// The locate, as without a prediction, not waiting for servers whose
	// predicted read is still out.
	src := newShareSource(c, v)
	src.suspects = a.suspects()
	lctx, lcancel := context.WithCancel(ctx)
	c.locateInto(lctx, src)
	waited := make(chan error, 1)
	go func() { waited <- src.waitEnough(ctx, c.grace()-time.Since(start)) }()
	var werr error
	select {
	case werr = <-waited:
	case <-a.done:
		if a.err == nil {
			// The slow reads answered before the locate: use them.
			lcancel()
			<-waited
			c.predicted(true)
			return a.f, nil
		}
		werr = <-waited
	}
	if werr == nil {
		// Predicted reads still out once the locate found enough shares
		// elsewhere: their servers hang, and are remembered so.
		var late []string
		for id := range a.suspects() {
			late = append(late, id)
		}
		c.gaveUp(late, time.Since(start))
	}
	a.cancel()
	<-a.done
	if a.err == nil {
		lcancel()
		c.predicted(true)
		return a.f, nil
	}
	c.predicted(false)
	if werr != nil {
		lcancel()
		return nil, werr
	}
	// Servers answering later still count, as without a prediction.
	go func() {
		src.waitDone(lctx)
		lcancel()
	}()
	prior := seed(src, a)
	f := c.newFile(ctx, v, src)
	f.prior = prior
	if err := f.start(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// seed gives the locate's source the shares the attempt read that did not
// fail a check, and leaves out holders whose share did; it returns the
// attempt's problems.
func seed(dst *shareSource, a *attempt) []chk.Problem {
	var probs []chk.Problem
	if a.f != nil {
		a.f.mu.Lock()
		probs = append(probs, a.f.reported...)
		a.f.mu.Unlock()
	}
	badShare := map[int]bool{}
	for _, p := range probs {
		badShare[p.Share] = true
	}
	a.src.mu.Lock()
	type got struct {
		sh  int
		w   *window
		srv Server
	}
	var good []got
	corrupt := map[int]string{}
	for sh, m := range a.src.cache {
		w := m[0]
		srv, served := a.src.servedBy[sh]
		if w == nil || !served {
			continue
		}
		select {
		case <-w.done:
		default:
			continue
		}
		if badShare[sh] {
			corrupt[sh] = srv.NodeID
			continue
		}
		if w.err == nil {
			good = append(good, got{sh, w, srv})
		}
	}
	a.src.mu.Unlock()
	for _, p := range probs {
		if !errors.Is(p.Err, chk.ErrCorrupt) {
			delete(corrupt, p.Share) // a read that failed: the server is just bad
		}
	}

	dst.mu.Lock()
	defer dst.mu.Unlock()
	for _, g := range good {
		if dst.cache[g.sh] == nil {
			dst.cache[g.sh] = map[int64]*window{0: g.w}
			dst.servedBy[g.sh] = g.srv
		}
	}
	if len(corrupt) > 0 {
		dst.skip = corrupt
		for sh, id := range corrupt {
			hs := dst.holders[sh][:0:0]
			for _, h := range dst.holders[sh] {
				if h.s.NodeID != id {
					hs = append(hs, h)
				}
			}
			if len(hs) == 0 {
				delete(dst.holders, sh)
			} else {
				dst.holders[sh] = hs
			}
		}
	}
	return probs
}

// The predict score of a client: a miss adds predictMissCost, a hit takes
// one off; at predictOff or more the client does not predict, and each
// download it does not predict takes one off, so it tries again after a
// while. Predictions stay on while fewer than about one in
// predictMissCost+1 misses.
const (
	predictMissCost = 8
	predictOff      = 4 * predictMissCost
	predictMax      = 8 * predictMissCost
)

// predictScores maps a Client (weakly: the entry goes with the Client) to
// its score; Client's fields are not this file's.
var predictScores sync.Map // weak.Pointer[Client] -> *atomic.Int32

func (c *Client) predictScore() *atomic.Int32 {
	k := weak.Make(c)
	if v, ok := predictScores.Load(k); ok {
		return v.(*atomic.Int32)
	}
	v, loaded := predictScores.LoadOrStore(k, new(atomic.Int32))
	if !loaded {
		runtime.AddCleanup(c, func(k weak.Pointer[Client]) { predictScores.Delete(k) }, k)
	}
	return v.(*atomic.Int32)
}

// predicting reports whether the client predicts now.
func (c *Client) predicting() bool {
	s := c.predictScore()
	if s.Load() < predictOff {
		return true
	}
	s.Add(-1)
	return false
}

// predicted records a prediction's outcome.
func (c *Client) predicted(hit bool) {
	s := c.predictScore()
	if hit {
		if s.Add(-1) < 0 {
			s.Store(0)
		}
		return
	}
	if s.Add(predictMissCost) > predictMax {
		s.Store(predictMax)
	}
}

// waitDone waits until every server of the locate answered or gave up.
func (s *shareSource) waitDone(ctx context.Context) {
	for {
		s.mu.Lock()
		done, ch := s.done, s.changed
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}
