package grid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/sdk/storage"
)

// errNotHeld: no server (still) known holds a share. Not a corruption.
var errNotHeld = errors.New("no server holds the share")

// metaWindow is the unit in which a share's header and hash trees are
// fetched and cached: the decoder asks for single 32-byte tree nodes.
const (
	metaWindow     = 32 << 10
	metaWindowsMax = 64 // per share: at most 2 MiB of cached trees
)

// File is an open immutable file: every byte read from it has been checked
// against its cap. It is safe for concurrent use.
type File struct {
	c    *Client
	cp   cap.Cap
	ctx  context.Context
	size int64
	lit  *bytes.Reader
	dec  *chk.Decoder
	src  *shareSource

	mu       sync.Mutex
	extra    []*chk.Decoder // more decoders for WriteTo's read-ahead
	advised  map[int]bool   // shares reported corrupt already
	reported []chk.Problem  // every problem reported (not errNotHeld)
	// prior are the problems of a predicted read that did not succeed
	// (download_predict.go), before this file's locate.
	prior []chk.Problem
	rc    *rangeCache // ReadAt's decoded segments (download_range.go)
	order []int       // the share order dec was made with
	// writing counts the WriteTo calls running.
	writing atomic.Int32
}

// Open prepares to read the file of a read cap (cap.CHK or cap.Literal). It
// asks the servers, in the file's ring order and in parallel, which shares
// they hold, and returns once K shares are located and one extension block
// matches the cap. ctx governs the File's later reads too (ReadAtContext
// takes its own).
func (c *Client) Open(ctx context.Context, cp cap.Cap) (*File, error) {
	c.stats.downloads.Add(1)
	f, err := c.open(ctx, cp)
	if err != nil {
		c.stats.downloadsFailed.Add(1)
		c.stats.errorOf(errorKind(err))
		return nil, c.Explain(err)
	}
	return f, nil
}

func (c *Client) open(ctx context.Context, cp cap.Cap) (*File, error) {
	switch v := cp.(type) {
	case cap.Literal:
		return &File{c: c, cp: cp, ctx: ctx, size: int64(len(v.Data)), lit: bytes.NewReader(v.Data)}, nil
	case cap.CHK:
		if p := c.predict(v); p != nil {
			return c.openPredicted(ctx, v, p)
		}
		src := c.locate(ctx, v)
		if err := src.waitEnough(ctx, c.grace()); err != nil {
			return nil, err
		}
		return c.decode(ctx, v, src)
	case nil:
		return nil, fmt.Errorf("open: no cap: %w", ErrNotReadable)
	default:
		return nil, fmt.Errorf("open %s cap: %w", cp.Kind(), ErrNotReadable)
	}
}

// openKnown opens a file whose share holders are known (an upload reading
// back what it sealed).
func (c *Client) openKnown(ctx context.Context, v cap.CHK, holders map[int][]Server) (*File, error) {
	src := newShareSource(c, v)
	src.done = true
	for sh, srvs := range holders {
		for i, s := range srvs {
			src.add(sh, holder{s, i})
		}
	}
	return c.decode(ctx, v, src)
}

func (c *Client) decode(ctx context.Context, v cap.CHK, src *shareSource) (*File, error) {
	f := c.newFile(ctx, v, src)
	if err := f.start(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func (c *Client) newFile(ctx context.Context, v cap.CHK, src *shareSource) *File {
	return &File{c: c, cp: v, ctx: ctx, size: v.Size, src: src, advised: map[int]bool{}}
}

// start makes the file's first decoder (reading an extension block) and
// sets up the source's caches for the file's layout.
func (f *File) start(ctx context.Context) error {
	src := f.src
	order := src.order()
	dec, err := f.newDecoderOrder(ctx, order)
	if err != nil {
		return err
	}
	f.order = order
	// The window cache serves header and trees; a share that fits one
	// window is read whole, once, with its blocks.
	l := dec.Layout()
	end := l.BlocksOffset
	if l.ShareSize <= metaWindow {
		end = l.ShareSize
	}
	src.setMetaEnd(end)
	if l.Segments > 1 && end < l.ShareSize {
		src.setBlocks(blockSpan{off: l.BlocksOffset, end: l.ShareSize, span: aheadSegs * int64(l.BlockSize)})
	}
	f.dec = dec
	return nil
}

// newDecoder makes a decoder of the file over its share source, trying
// shares in the source's current order.
func (f *File) newDecoder(ctx context.Context) (*chk.Decoder, error) {
	return f.newDecoderOrder(ctx, f.src.order())
}

// newDecoderOrder makes a decoder trying shares in the order given, but
// for those found corrupt: they stay out for the File's life.
func (f *File) newDecoderOrder(ctx context.Context, order []int) (*chk.Decoder, error) {
	f.mu.Lock()
	order = slices.DeleteFunc(slices.Clone(order), func(sh int) bool { return f.advised[sh] })
	f.mu.Unlock()
	dec, err := chk.NewDecoder(ctx, f.cp.(cap.CHK), f.c.cfg.Codec, f.src,
		&chk.Options{Shares: order, OnProblem: f.problem, RetryAfter: f.src.retry})
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", f.src.si, err)
	}
	return dec, nil
}

// problem logs a bad share and tells its server.
func (f *File) problem(p chk.Problem) {
	if errors.Is(p.Err, errNotHeld) {
		return
	}
	si := f.src.si
	f.mu.Lock()
	f.reported = append(f.reported, p)
	f.mu.Unlock()
	if !errors.Is(p.Err, chk.ErrCorrupt) {
		f.c.log.Info("share unreadable", "index", si.String(), "share", p.Share, "error", p.Error())
		return
	}
	f.mu.Lock()
	again := f.advised[p.Share]
	f.advised[p.Share] = true
	f.mu.Unlock()
	if again {
		return // another decoder of this file found it first
	}
	f.c.stats.corrupt.Add(1)
	f.c.stats.errorOf(KindCorrupt)
	srv, ok := f.src.served(p.Share)
	f.c.log.Warn("corrupt share", "index", si.String(), "share", p.Share, "node", srv.NodeID, "problem", p.Error())
	if !ok {
		return
	}
	f.c.bg.Add(1)
	go func() {
		defer f.c.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), f.c.cfg.ServerTimeout)
		defer cancel()
		err := f.c.do(ctx, srv, func(cl *storageclient.Client) error {
			return cl.AdviseCorruption(ctx, storage.Ref{Index: si, Num: uint32(p.Share)}, false, p.Error())
		})
		if err != nil {
			f.c.log.Info("advise corruption", "index", si.String(), "share", p.Share, "node", srv.NodeID, "error", err)
		}
	}()
}

// Cap is the file's read cap.
func (f *File) Cap() cap.Cap { return f.cp }

// Size is the file's size in bytes.
func (f *File) Size() int64 { return f.size }

// Problems lists the shares that failed a check or a read so far (shares
// no server holds are not problems).
func (f *File) Problems() []chk.Problem {
	if f.dec == nil {
		return nil
	}
	f.mu.Lock()
	decs := append([]*chk.Decoder{f.dec}, f.extra...)
	f.mu.Unlock()
	out := append([]chk.Problem(nil), f.prior...)
	seen := map[string]bool{}
	for _, d := range decs {
		for _, p := range d.Problems() {
			key := fmt.Sprint(p.Share, p.What)
			if !errors.Is(p.Err, errNotHeld) && !seen[key] {
				seen[key] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// ReadAt implements io.ReaderAt with the context given to Open. It fetches
// the segments holding the bytes asked for, each once however many
// concurrent reads want it, and those ahead of a sequential reader
// (download_range.go).
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.ReadAtContext(f.ctx, p, off) }

// ReadAtContext is ReadAt with its own context.
func (f *File) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if f.lit != nil {
		return f.lit.ReadAt(p, off)
	}
	n, err := f.ranges().readAt(ctx, p, off)
	if err != nil && err != io.EOF {
		f.c.stats.errorOf(errorKind(err))
	}
	return n, err
}

// Reader returns an io.ReadSeeker over the whole file.
func (f *File) Reader() *io.SectionReader { return io.NewSectionReader(f, 0, f.size) }

// WriteTo streams the whole file to w. Up to readAhead segments are
// fetched, checked and decrypted at once (each by its own decoder over
// the same servers), and written in order.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	if f.lit != nil {
		return f.lit.WriteTo(w)
	}
	n, err := f.writeTo(w)
	if err != nil {
		f.c.stats.errorOf(errorKind(err))
	}
	return n, err
}

// readAhead bounds the segments a WriteTo works on at once.
const readAhead = 4

func (f *File) writeTo(w io.Writer) (int64, error) {
	// Range reads meanwhile read nothing ahead: this fetches every
	// segment anyway (download_range.go).
	f.writing.Add(1)
	defer f.writing.Add(-1)
	l := f.dec.Layout()
	workers := min(runtime.GOMAXPROCS(0), readAhead, l.Segments)
	decs := []*chk.Decoder{f.dec}
	for len(decs) < workers {
		d, err := f.newDecoder(f.ctx)
		if err != nil {
			break
		}
		decs = append(decs, d)
	}
	f.mu.Lock()
	f.extra = append(f.extra, decs[1:]...)
	f.mu.Unlock()
	if len(decs) == 1 {
		return f.dec.WriteTo(w)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	// Block reads of these decoders go through the read-ahead, whose
	// background fetches end with ctx.
	run := &aheadRun{ctx: ctx}
	actx := context.WithValue(ctx, aheadKey{}, run)
	type result struct {
		buf *[]byte
		err error
	}
	outs := make([]chan result, len(decs))
	var wg sync.WaitGroup
	for j, d := range decs {
		outs[j] = make(chan result, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(outs[j])
			for i := j; i < l.Segments; i += len(decs) {
				b := getBuf(l.SegmentLen(i))
				_, err := d.ReadAtContext(actx, *b, int64(i)*int64(l.SegmentSize))
				if err == io.EOF {
					err = nil
				}
				select {
				case outs[j] <- result{b, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		// Cancel first: a worker may be waiting to hand over a segment.
		cancel()
		wg.Wait()
		f.src.endAhead(run)
	}()
	var total int64
	for i := 0; i < l.Segments; i++ {
		r, ok := <-outs[i%len(decs)]
		if !ok {
			return total, fmt.Errorf("chk read %s: segment %d: %w", f.src.si, i, ctx.Err())
		}
		if r.err != nil {
			bufPool.Put(r.buf)
			return total, r.err
		}
		n, err := w.Write(*r.buf)
		total += int64(n)
		bufPool.Put(r.buf)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// holder is a server holding a share, with its ring position.
type holder struct {
	s   Server
	pos int
}

// shareSource reads shares from the servers that hold them, trying the
// next holder when one fails, and caches the hash-tree region of each
// share.
type shareSource struct {
	c  *Client
	si cap.StorageIndex
	k  int
	n  int

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	holders  map[int][]holder
	bad      map[string]failure // servers that failed during this download
	retry    time.Duration      // back-off after a server's first failure
	servedBy map[int]Server
	asked    int
	answered int
	done     bool // every server answered or gave up
	// waiting counts the servers not answered yet that waitEnough waits
	// for: all but the suspects (servers remembered as hung, and those
	// whose predicted read was still out when the locate began,
	// download_predict.go).
	waiting  int
	suspects map[string]bool
	out      map[string]bool // servers of the locate that have not answered yet
	// skip: a share's holder known to hold it corrupt (found by a
	// predicted read): not added when the locate finds it there.
	skip    map[int]string
	metaEnd int64
	cache   map[int]map[int64]*window

	// The read-ahead of WriteTo (download_ahead.go).
	blocks blockSpan
	ahead  map[int]map[int64]*blockWin
	free   [][]byte // window buffers to reuse
}

var _ chk.ShareSource = (*shareSource)(nil)

func newShareSource(c *Client, v cap.CHK) *shareSource {
	// Until the layout is known (the decoder's first read, of header and
	// extension block), reads in the first window go through the cache,
	// so that the share's first window is fetched once, not twice.
	return &shareSource{c: c, si: v.StorageIndex(), k: v.K, n: v.N, changed: make(chan struct{}),
		holders: map[int][]holder{}, bad: map[string]failure{}, retry: c.retryAfter(), servedBy: map[int]Server{},
		cache: map[int]map[int64]*window{}, metaEnd: metaWindow, ahead: map[int]map[int64]*blockWin{}}
}

func (s *shareSource) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// add records a holder, keeping ring order; s.mu need not be held by the
// caller when the source is not shared yet.
func (s *shareSource) add(sh int, h holder) {
	if sh < 0 || sh >= s.n || s.skip[sh] == h.s.NodeID {
		return
	}
	hs := append(s.holders[sh], h)
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].pos < hs[j].pos })
	s.holders[sh] = hs
}

// locate starts asking every server for its shares of v.
func (c *Client) locate(ctx context.Context, v cap.CHK) *shareSource {
	s := newShareSource(c, v)
	c.locateInto(ctx, s)
	return s
}

// locateInto starts asking every server for its shares of s's file; s is
// not shared yet.
func (c *Client) locateInto(ctx context.Context, s *shareSource) {
	servers := ring(s.si[:], c.servers())
	s.asked = len(servers)
	// Servers remembered as hung are asked but not waited for, like
	// suspects.
	for i := range c.hung().skip(servers, time.Now()) {
		if s.suspects == nil {
			s.suspects = map[string]bool{}
		}
		s.suspects[servers[i].NodeID] = true
	}
	s.out = make(map[string]bool, len(servers))
	for _, srv := range servers {
		s.out[srv.NodeID] = true
		if !s.suspects[srv.NodeID] {
			s.waiting++
		}
	}
	if len(servers) == 0 {
		s.done = true
		return
	}
	sem := make(chan struct{}, c.cfg.Parallel)
	left := len(servers)
	for i, srv := range servers {
		go func() {
			var have []uint32
			answered := false
			select {
			case sem <- struct{}{}:
				err := c.do(ctx, srv, func(cl *storageclient.Client) error {
					rctx, cancel := c.reqCtx(ctx)
					defer cancel()
					list, err := cl.List(rctx, s.si)
					have = have[:0]
					for _, in := range list {
						have = append(have, in.Num)
					}
					return err
				})
				<-sem
				switch {
				case err != nil && ctx.Err() != nil:
					// Cancelled: the locate had its shares (or its caller left).
					c.log.Debug("server did not list shares", "index", s.si.String(), "node", srv.NodeID, "error", err)
				case err != nil:
					c.log.Info("server did not list shares", "index", s.si.String(), "node", srv.NodeID, "error", err)
				}
				answered = err == nil
			case <-ctx.Done():
			}
			if answered {
				c.hung().clear(srv.NodeID)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.out, srv.NodeID)
			if answered {
				s.answered++
			}
			for _, sh := range have {
				s.add(int(sh), holder{srv, i})
			}
			if left--; left == 0 {
				s.done = true
			}
			if !s.suspects[srv.NodeID] {
				s.waiting--
			}
			s.notifyLocked()
		}()
	}
}

// grace is how long a download waits for the other servers once K shares
// are located.
func (c *Client) grace() time.Duration {
	return min(250*time.Millisecond, c.cfg.ServerTimeout/4)
}

// waitEnough waits until every server answered, or K distinct shares are
// located and the others had a short grace to answer too (so that shares
// are tried in ring order when all servers are well, yet a hung server
// costs little). Suspects are not waited for once K shares are located.
func (s *shareSource) waitEnough(ctx context.Context, grace time.Duration) error {
	var timer <-chan time.Time
	for {
		s.mu.Lock()
		found, done, ch := len(s.holders), s.done, s.changed
		if found >= s.k && s.waiting <= 0 {
			s.mu.Unlock()
			return nil // every server but the suspects answered
		}
		if done && found < s.k {
			srvs := map[string]bool{}
			for _, hs := range s.holders {
				for _, h := range hs {
					srvs[h.s.NodeID] = true
				}
			}
			err := fmt.Errorf("download %s: %w: %d shares found on %d servers (%d of %d answered), %d needed",
				s.si, ErrNotEnoughShares, found, len(srvs), s.answered, s.asked, s.k)
			if found == 0 && s.asked > 0 && s.answered == s.asked {
				err = fmt.Errorf("download %s: %w (%d of %d answered): %w", s.si, ErrNoShares, s.answered, s.asked, ErrNotEnoughShares)
			}
			s.mu.Unlock()
			return err
		}
		s.mu.Unlock()
		if done {
			return nil
		}
		if found >= s.k && timer == nil {
			if grace <= 0 {
				return nil
			}
			timer = time.After(grace)
		}
		select {
		case <-ch:
		case <-timer:
			// Those still silent are remembered as hung: the next
			// downloads do not wait for them.
			s.mu.Lock()
			var late []string
			for id := range s.out {
				late = append(late, id)
			}
			s.mu.Unlock()
			s.c.gaveUp(late, grace)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("download %s: looking for shares: %w", s.si, ctx.Err())
		}
	}
}

// order is the order in which the decoder tries shares: one share per
// server in ring order first (so the K blocks of a segment come from K
// servers at once), servers that failed lately last, then shares not
// located yet.
func (s *shareSource) order() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	type srvShares struct {
		pos    int
		failed bool
		shares []int
	}
	bySrv := map[string]*srvShares{}
	for sh, hs := range s.holders {
		for _, h := range hs {
			x := bySrv[h.s.NodeID]
			if x == nil {
				x = &srvShares{pos: h.pos, failed: s.c.recentlyFailed(h.s)}
				bySrv[h.s.NodeID] = x
			}
			x.shares = append(x.shares, sh)
		}
	}
	srvs := make([]*srvShares, 0, len(bySrv))
	for _, x := range bySrv {
		sort.Ints(x.shares)
		srvs = append(srvs, x)
	}
	sort.Slice(srvs, func(i, j int) bool {
		if srvs[i].failed != srvs[j].failed {
			return !srvs[i].failed
		}
		return srvs[i].pos < srvs[j].pos
	})
	var out []int
	seen := map[int]bool{}
	for round := 0; ; round++ {
		more := false
		for _, x := range srvs {
			if round < len(x.shares) {
				more = true
				if sh := x.shares[round]; !seen[sh] {
					seen[sh] = true
					out = append(out, sh)
				}
			}
		}
		if !more {
			break
		}
	}
	for sh := 0; sh < s.n; sh++ {
		if !seen[sh] {
			out = append(out, sh)
		}
	}
	return out
}

func (s *shareSource) setMetaEnd(end int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metaEnd = end
}

func (s *shareSource) served(sh int) (Server, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, ok := s.servedBy[sh]
	return srv, ok
}

// ReadAt reads share sh: hash-tree bytes through the window cache, blocks
// straight from a holder.
func (s *shareSource) ReadAt(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	if sh < 0 || sh >= s.n || off < 0 {
		return 0, fmt.Errorf("read share %d of %s at %d: out of range", sh, s.si, off)
	}
	s.mu.Lock()
	end := s.metaEnd
	s.mu.Unlock()
	if end == 0 || off+int64(len(p)) > end {
		if n, ok, err := s.readAhead(ctx, sh, p, off); ok {
			return n, err
		}
		return s.fetch(ctx, sh, p, off)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		w := pos / metaWindow * metaWindow
		win, err := s.window(ctx, sh, w, min(w+metaWindow, end))
		if err != nil {
			return n, err
		}
		if pos-w >= int64(len(win)) {
			return n, io.EOF // the share ends before the window does
		}
		n += copy(p[n:], win[pos-w:])
	}
	return n, nil
}

// window is one cached window of a share, fetched once however many
// decoders ask for it at the same time.
type window struct {
	done chan struct{} // closed once buf or err is set
	buf  []byte
	err  error
}

func (s *shareSource) window(ctx context.Context, sh int, start, end int64) ([]byte, error) {
	for {
		s.mu.Lock()
		w, ok := s.cache[sh][start]
		if !ok {
			break // s.mu held: this call fetches it
		}
		s.mu.Unlock()
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if w.err == nil {
			return w.buf, nil
		}
		// The fetch failed (perhaps only its caller's context ended), and
		// it is out of the cache: try again.
	}
	w := &window{done: make(chan struct{})}
	m := s.cache[sh]
	if m == nil {
		m = map[int64]*window{}
		s.cache[sh] = m
	}
	if len(m) >= metaWindowsMax {
		for k := range m {
			delete(m, k)
			break
		}
	}
	m[start] = w
	s.mu.Unlock()
	buf := make([]byte, end-start)
	n, err := s.fetch(ctx, sh, buf, start)
	if err == io.EOF && n > 0 {
		err = nil // a share shorter than the window: keep what there is
	}
	w.buf, w.err = buf[:n], err
	if err != nil {
		s.mu.Lock()
		if s.cache[sh][start] == w {
			delete(s.cache[sh], start)
		}
		s.mu.Unlock()
	}
	close(w.done)
	return w.buf, w.err
}

// A server whose read failed during a download (a timeout, a dropped
// connection; not a share it lacks) is not asked again before a back-off:
// retryAfter, doubled with each failure in a row up to retryDoublings
// times. Then it is tried again, so that a File kept open for long (an
// SFTP handle, a WebDAV range File in its cache) reads again once its
// servers are back; the decoders back off the shares likewise
// (chk.Options.RetryAfter). A share found corrupt stays bad.
const retryDoublings = 3

// testRetryAfter, when set, replaces retryAfter's default (tests).
var testRetryAfter atomic.Int64

// failure is a server's run of failed reads in one download.
type failure struct {
	n     int       // failures in a row
	until time.Time // not asked again before
}

// retryAfter is the back-off after a server's first failed read: a few
// server timeouts, at least 30 s.
func (c *Client) retryAfter() time.Duration {
	if d := time.Duration(testRetryAfter.Load()); d > 0 {
		return d
	}
	return max(30*time.Second, 2*c.cfg.ServerTimeout)
}

// next returns the first holder of sh not failed and not tried yet; if
// none, and servers are still being asked, a channel that changes when
// they answer.
func (s *shareSource) next(sh int, tried map[string]bool) (Server, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, h := range s.holders[sh] {
		if now.After(s.bad[h.s.NodeID].until) && !tried[h.s.NodeID] {
			return h.s, true, nil
		}
	}
	if s.done {
		return Server{}, false, nil
	}
	return Server{}, false, s.changed
}

func (s *shareSource) fetch(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	tried := map[string]bool{}
	var lastErr error
	for {
		srv, ok, wait := s.next(sh, tried)
		if !ok {
			if wait != nil {
				select {
				case <-wait:
					continue
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			if lastErr != nil {
				return 0, lastErr
			}
			return 0, fmt.Errorf("share %d of %s: %w", sh, s.si, errNotHeld)
		}
		tried[srv.NodeID] = true
		n := 0
		err := s.c.do(ctx, srv, func(cl *storageclient.Client) error {
			rctx, cancel := s.c.reqCtx(ctx)
			defer cancel()
			// Straight into p (the decoder's block slot): the one copy
			// of the data on this side.
			var err error
			n, err = cl.ReadInto(rctx, s.si, uint32(sh), p, off)
			s.c.stats.bytesDown.Add(int64(n))
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil // a short share: the decoder finds it corrupt
			}
			return err
		})
		if err == nil {
			s.mu.Lock()
			s.servedBy[sh] = srv
			delete(s.bad, srv.NodeID)
			s.mu.Unlock()
			if n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		lastErr = err
		s.mu.Lock()
		if errors.Is(err, storage.ErrNotFound) {
			hs := s.holders[sh][:0:0]
			for _, h := range s.holders[sh] {
				if h.s.NodeID != srv.NodeID {
					hs = append(hs, h)
				}
			}
			s.holders[sh] = hs
		} else {
			// (Reads of it that fail while it backs off, out before it
			// began, are the same failure.)
			if f, now := s.bad[srv.NodeID], time.Now(); !now.Before(f.until) {
				f.n++
				back := s.retry << min(f.n-1, retryDoublings)
				f.until = now.Add(back)
				s.bad[srv.NodeID] = f
				s.c.log.Info("server failed during download", "index", s.si.String(), "node", srv.NodeID, "retry_in", back, "error", err)
			}
		}
		s.mu.Unlock()
	}
}
