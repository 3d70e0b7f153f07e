package chk

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

// ShareSource reads the shares of one file, like io.ReaderAt per share
// number: n < len(p) only with an error (io.EOF at the end of a share). An
// error for a share the source does not have is fine: the share counts as
// missing. It must be safe for concurrent use.
type ShareSource interface {
	ReadAt(ctx context.Context, shnum int, p []byte, off int64) (int, error)
}

var (
	errMissing = errors.New("no such share")
	errShort   = io.EOF
)

// Problem is one failed check or read of one share. A Decoder reports each
// share at most once and never uses that share again, except a share whose
// read failed when Options.RetryAfter is set: it is tried again after that
// back-off (and reported again if it fails again).
type Problem struct {
	Share   int
	Segment int    // -1 when not about one segment
	What    string // the part that failed: "read", "header", "extension block", "share hash proof", "block", "block hash tree", "ciphertext hash tree"
	Err     error
}

func (p Problem) Error() string {
	if p.Segment >= 0 {
		return fmt.Sprintf("share %d segment %d: %s: %v", p.Share, p.Segment, p.What, p.Err)
	}
	return fmt.Sprintf("share %d: %s: %v", p.Share, p.What, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// Options tune a Decoder.
type Options struct {
	// Shares is the order in which to try share numbers (for instance the
	// shares of the fastest servers first); nil means 0..N-1.
	Shares []int
	// OnProblem, if set, is called for every share that fails.
	OnProblem func(Problem)
	// ReadTimeout bounds the fetch of one share's block (with whatever
	// tree nodes it needs); a share that takes longer is reported and
	// replaced, so a hung server costs one timeout, not the download. The
	// ShareSource must honour ctx. 0 means no limit.
	ReadTimeout time.Duration
	// TreePrefetch: when a share's header, UEB and both hash trees
	// together take at most this many bytes, the decoder reads them in one
	// read and checks the trees whole, so each block then costs one read
	// (0 means DefaultTreePrefetch, negative never). Larger files read the
	// uncles they need node by node.
	TreePrefetch int64
	// RetryAfter: a share whose read failed (an error of its source, such
	// as a timeout or a dropped connection; not a short share nor any
	// failed check, which stay bad) is tried again once this long has
	// passed, and only when the shares that have not failed do not
	// suffice; a long-lived decoder so reads again once its servers are
	// back. A source over servers backs off a failing server itself (a
	// read it refuses at once costs nothing). 0 means never.
	RetryAfter time.Duration
}

// DefaultTreePrefetch covers files of up to ~2 GiB at 1 MiB segments.
const DefaultTreePrefetch = 256 << 10

type shareState struct {
	num   int
	found bool // something was read from it
	bad   bool
	// retry: when bad after a failed read (RetryAfter), when it may be
	// tried again; zero when bad for good.
	retry time.Time
	ready bool
	tree  *hashtree.Partial // its block hash tree, rooted in the share tree
}

// Decoder reads one immutable file through its read cap. Every byte it
// returns has been checked: each block against its share's block hash tree,
// that tree's root against the share hash tree in the extension block, the
// extension block against the cap, and each decoded segment against the
// ciphertext hash tree. It is safe for concurrent use (calls are serialised).
type Decoder struct {
	mu       sync.Mutex
	ctx      context.Context
	vc       cap.CHKVerify // what the cap promises (a read cap gives its verify cap)
	codec    codec.Codec
	src      ShareSource
	opt      Options
	ueb      UEB
	uebBytes []byte
	l        Layout
	aes      cipher.Block
	shares   []*shareState
	cipher   *hashtree.Partial
	cmu      sync.Mutex // guards cipher during concurrent prepares
	pmu      sync.Mutex // guards problems; blocks of one segment are fetched concurrently
	problems []Problem

	// Buffers of one segment: K block slots (a segment needs K good
	// blocks at a time; a share that fails gives its slot to the next)
	// and the decoded ciphertext. With a codec that shares memory with
	// its plugin (alloc), they lie in that memory, so the blocks are
	// fetched into it and decoded in place with no copy in or out; they
	// are taken when a call needs a segment decoded and returned when
	// that call ends, so a Decoder holds no shared memory between calls
	// and needs no Close. Otherwise they are heap buffers kept for the
	// Decoder's life, sized to the file's largest segment.
	alloc     bufferAllocator
	bufs      *codec.Buffers // the shared buffers held by the current call
	slots     [][]byte       // K block buffers, in bufs or heapSlots
	ct        []byte         // decoded ciphertext segment, in bufs or heapCT
	heapSlots [][]byte
	heapCT    []byte
	plain     []byte // cached plaintext segment
	plainIx   int    // which segment plain holds, -1 none
	closed    bool
}

// ErrClosed is returned by reads of a closed Decoder.
var ErrClosed = errors.New("chk: decoder closed")

// NewDecoder finds a share whose extension block matches the cap and
// prepares to read. ctx governs reads made through ReadAt (ReadAtContext
// takes its own).
func NewDecoder(ctx context.Context, c cap.CHK, cd codec.Codec, src ShareSource, opt *Options) (*Decoder, error) {
	return newDecoder(ctx, c.Verify(), newCipher(c.Key), cd, src, opt)
}

// newDecoder makes a decoder; with a nil aes it can only give ciphertext
// (for repair with a verify cap).
func newDecoder(ctx context.Context, c cap.CHKVerify, aes cipher.Block, cd codec.Codec, src ShareSource, opt *Options) (*Decoder, error) {
	if err := (codec.Params{K: c.K, N: c.N}).Validate(); err != nil {
		return nil, fmt.Errorf("chk decoder: %w", err)
	}
	d := &Decoder{ctx: ctx, vc: c, codec: cd, src: src, aes: aes, plainIx: -1}
	if opt != nil {
		d.opt = *opt
	}
	order := d.opt.Shares
	if order == nil {
		for i := 0; i < c.N; i++ {
			order = append(order, i)
		}
	}
	seen := map[int]bool{}
	for _, s := range order {
		if s < 0 || s >= c.N || seen[s] {
			return nil, fmt.Errorf("chk decoder: share order names share %d twice or out of 0..%d", s, c.N-1)
		}
		seen[s] = true
		d.shares = append(d.shares, &shareState{num: s})
	}
	info, err := cd.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("chk decoder: codec info: %w", err)
	}
	for _, sh := range d.shares {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if d.opt.ReadTimeout > 0 {
			rctx, cancel = context.WithTimeoutCause(ctx, d.opt.ReadTimeout, errReadTimeout)
		}
		u, raw, err := d.readUEB(rctx, sh)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chk decoder: %w", ctx.Err())
			}
			continue
		}
		if u.Codec != info.Name {
			return nil, fmt.Errorf("chk decoder: file was coded with codec %q, have %q", u.Codec, info.Name)
		}
		d.ueb, d.uebBytes = u, raw
		d.l, _ = NewLayout(u.Params(), u.Size)
		d.cipher, _ = hashtree.NewPartial(tagged.ChkCiphertextNode, u.CiphertextRoot, d.l.Segments)
		d.alloc, _ = cd.(bufferAllocator)
		return d, nil
	}
	return nil, fmt.Errorf("chk decoder: %w: no share of %d tried holds a valid extension block (%s)", ErrNotEnoughShares, len(d.shares), d.summary())
}

func (d *Decoder) summary() string {
	found := 0
	for _, s := range d.shares {
		if s.found {
			found++
		}
	}
	if len(d.problems) == 0 {
		return fmt.Sprintf("%d found", found)
	}
	return fmt.Sprintf("%d found; first problem: %v", found, d.problems[0])
}

func (d *Decoder) report(sh *shareState, seg int, what string, err error) {
	sh.bad, sh.retry = true, time.Time{}
	p := Problem{Share: sh.num, Segment: seg, What: what, Err: err}
	d.pmu.Lock()
	defer d.pmu.Unlock()
	// A share retried after its back-off (RetryAfter) that fails the same
	// way again is listed once: a long-lived decoder whose servers stay
	// down would otherwise grow its list with every retry.
	if d.opt.RetryAfter <= 0 || !slices.ContainsFunc(d.problems, func(q Problem) bool {
		return q.Share == p.Share && q.What == p.What
	}) {
		d.problems = append(d.problems, p)
	}
	if d.opt.OnProblem != nil {
		d.opt.OnProblem(p)
	}
}

// errReadTimeout is the cause of a read's context ended by
// Options.ReadTimeout: the share was too slow, a problem of the share's.
var errReadTimeout = errors.New("share read timed out")

// readFailed reports a failed read of share sh, unless it failed because
// the caller's context ended (cancelled, or its own deadline): that says
// nothing about the share, and marking it bad would leave the decoder,
// which a range cache lends to later reads, short of good shares.
func (d *Decoder) readFailed(ctx context.Context, sh *shareState, seg int, err error) {
	if ctx.Err() != nil && context.Cause(ctx) != errReadTimeout {
		return
	}
	d.report(sh, seg, "read", err)
	if d.opt.RetryAfter > 0 && !errors.Is(err, ErrCorrupt) {
		sh.retry = time.Now().Add(d.opt.RetryAfter)
	}
}

// tryOrder is the order in which a segment tries shares: those not failed,
// in the preferred order, then those whose read failed and whose back-off
// is over (RetryAfter). A share taken from it is no longer bad: good again
// if it works, failed again (with a new back-off) if not.
func (d *Decoder) tryOrder() []*shareState {
	out := make([]*shareState, 0, len(d.shares))
	var again []*shareState
	now := time.Now()
	for _, sh := range d.shares {
		switch {
		case !sh.bad:
			out = append(out, sh)
		case !sh.retry.IsZero() && !now.Before(sh.retry):
			again = append(again, sh)
		}
	}
	return append(out, again...)
}

func (d *Decoder) read(ctx context.Context, sh *shareState, p []byte, off int64) error {
	n, err := d.src.ReadAt(ctx, sh.num, p, off)
	if n == len(p) {
		sh.found = true
		return nil
	}
	if err == nil || err == io.EOF {
		sh.found = sh.found || n > 0 || off > 0
		return fmt.Errorf("short read: %d of %d bytes at %d: %w", n, len(p), off, ErrCorrupt)
	}
	return err
}

// readUEB reads a share's header and extension block and checks them
// against the cap; it does not mark the share ready.
func (d *Decoder) readUEB(ctx context.Context, sh *shareState) (UEB, []byte, error) {
	buf := make([]byte, HeaderSize+UEBSize)
	if err := d.read(ctx, sh, buf, 0); err != nil {
		d.readFailed(ctx, sh, -1, err)
		return UEB{}, nil, err
	}
	h, err := ParseHeader(buf)
	if err != nil {
		d.report(sh, -1, "header", err)
		return UEB{}, nil, err
	}
	raw := buf[HeaderSize:]
	if got := tagged.Hash(tagged.ChkUEB, raw); got != d.vc.UEBHash {
		err := fmt.Errorf("hash does not match the cap: %w", ErrCorrupt)
		d.report(sh, -1, "extension block", err)
		return UEB{}, nil, err
	}
	u, err := ParseUEB(raw)
	if err == nil && (u.K != d.vc.K || u.N != d.vc.N || u.Size != d.vc.Size) {
		err = fmt.Errorf("K=%d N=%d size=%d, cap says K=%d N=%d size=%d: %w", u.K, u.N, u.Size, d.vc.K, d.vc.N, d.vc.Size, ErrCorrupt)
	}
	if err != nil {
		d.report(sh, -1, "extension block", err)
		return UEB{}, nil, err
	}
	l, err := NewLayout(u.Params(), u.Size)
	if err == nil && h != l.Header(sh.num) {
		err = fmt.Errorf("does not match the layout of the extension block: %w", ErrCorrupt)
	}
	if err != nil {
		d.report(sh, -1, "header", err)
		return UEB{}, nil, err
	}
	return u, append([]byte(nil), raw...), nil
}

// prepare checks a share's header, extension block and share-tree proof, and
// sets up its block tree.
func (d *Decoder) prepare(ctx context.Context, sh *shareState) error {
	limit := d.opt.TreePrefetch
	if limit == 0 {
		limit = DefaultTreePrefetch
	}
	whole := d.l.BlocksOffset <= limit && hashtree.NodeCount(d.l.Segments) <= hashtree.MaxLearn
	n := d.l.BlockTreeOffset + tagged.Size
	if whole {
		n = d.l.BlocksOffset
	}
	buf := make([]byte, n)
	if err := d.read(ctx, sh, buf, 0); err != nil {
		d.readFailed(ctx, sh, -1, err)
		return err
	}
	h, err := ParseHeader(buf)
	if err == nil && h != d.l.Header(sh.num) {
		err = fmt.Errorf("does not match the layout of the extension block: %w", ErrCorrupt)
	}
	if err != nil {
		d.report(sh, -1, "header", err)
		return err
	}
	if !bytes.Equal(buf[d.l.UEBOffset:d.l.ProofOffset], d.uebBytes) {
		err := fmt.Errorf("differs from the verified one: %w", ErrCorrupt)
		d.report(sh, -1, "extension block", err)
		return err
	}
	proof := make([]hashtree.Hash, hashtree.Depth(d.l.N))
	for j := range proof {
		copy(proof[j][:], buf[d.l.ProofOffset+int64(j)*tagged.Size:])
	}
	var root hashtree.Hash
	copy(root[:], buf[d.l.BlockTreeOffset:])
	if err := hashtree.VerifyProof(tagged.ChkShareTreeNode, d.ueb.ShareRoot, d.l.N, sh.num, root, proof); err != nil {
		err = fmt.Errorf("block tree root does not lead to the share tree root: %w", ErrCorrupt)
		d.report(sh, -1, "share hash proof", err)
		return err
	}
	tree, _ := hashtree.NewPartial(tagged.ChkBlockTreeNode, root, d.l.Segments)
	if whole {
		if err := tree.Learn(buf[d.l.BlockTreeOffset:d.l.CipherOffset]); err != nil {
			d.report(sh, -1, "block hash tree", fmt.Errorf("%v: %w", err, ErrCorrupt))
			return err
		}
		// Every share's copy of the ciphertext tree is checked, so a bad
		// copy is reported whichever share happens to be read first.
		d.cmu.Lock()
		err := d.cipher.Learn(buf[d.l.CipherOffset:d.l.BlocksOffset])
		d.cmu.Unlock()
		if err != nil {
			d.report(sh, -1, "ciphertext hash tree", fmt.Errorf("%v: %w", err, ErrCorrupt))
			return err
		}
	}
	sh.tree = tree
	sh.ready = true
	return nil
}

// readNodes reads tree nodes idx of the tree at base in share sh.
func (d *Decoder) readNodes(ctx context.Context, sh *shareState, base int64, idx []int) (map[int]hashtree.Hash, error) {
	out := make(map[int]hashtree.Hash, len(idx))
	var h hashtree.Hash
	for _, i := range idx {
		if err := d.read(ctx, sh, h[:], base+int64(i)*tagged.Size); err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// block fetches and verifies block seg of share sh into b (its length).
func (d *Decoder) block(ctx context.Context, sh *shareState, seg int, b []byte) error {
	if !sh.ready {
		if err := d.prepare(ctx, sh); err != nil {
			return err
		}
	}
	off, _ := d.l.Block(seg)
	if err := d.read(ctx, sh, b, off); err != nil {
		d.readFailed(ctx, sh, seg, err)
		return err
	}
	given, err := d.readNodes(ctx, sh, d.l.BlockTreeOffset, sh.tree.Needed(seg))
	if err != nil {
		d.readFailed(ctx, sh, seg, err)
		return err
	}
	leaf := tagged.Hash(tagged.ChkBlock, b)
	if err := sh.tree.Verify(seg, leaf, given); err != nil {
		what := "block"
		if len(given) > 0 {
			what = "block or block hash tree"
		}
		d.report(sh, seg, what, fmt.Errorf("%v: %w", err, ErrCorrupt))
		return err
	}
	return nil
}

// segment returns the plaintext of segment i (valid until the next call).
func (d *Decoder) segment(ctx context.Context, i int) ([]byte, error) {
	if d.plainIx == i {
		return d.plain, nil
	}
	d.plainIx = -1
	ct, err := d.cipherSegment(ctx, i)
	if err != nil {
		return nil, err
	}
	d.plain = grow(d.plain, len(ct), d.maxSegment())
	xorKeyStream(d.aes, int64(i)*int64(d.l.SegmentSize), d.plain, ct)
	d.plainIx = i
	return d.plain, nil
}

// segmentInto decrypts segment i straight into dst (exactly its length),
// from the cached plaintext when it holds i: a whole-segment read costs no
// copy of the plaintext.
func (d *Decoder) segmentInto(ctx context.Context, i int, dst []byte) error {
	if d.plainIx == i {
		copy(dst, d.plain)
		return nil
	}
	ct, err := d.cipherSegment(ctx, i)
	if err != nil {
		return err
	}
	xorKeyStream(d.aes, int64(i)*int64(d.l.SegmentSize), dst, ct)
	return nil
}

// maxSegment is the length of the file's largest segment, the first: no
// buffer of a small file is sized to SegmentSize.
func (d *Decoder) maxSegment() int { return d.l.SegmentLen(0) }

// acquire makes sure the segment buffers are there: shared ones when the
// codec has shared memory with room, else the heap ones.
func (d *Decoder) acquire() {
	if d.slots != nil {
		return
	}
	segMax := d.maxSegment()
	if d.alloc != nil {
		// Params K of K: the block size depends on K alone, and a
		// segment never holds more than K blocks at once.
		b, err := d.alloc.AllocBuffers(codec.Params{K: d.l.K, N: d.l.K}, segMax)
		if err == nil && b != nil && b.Shared() {
			d.bufs, d.slots, d.ct = b, b.Blocks, b.Segment
			return
		}
		// No shared memory (or no room): heap buffers from now on.
		d.alloc = nil
		if err == nil && b != nil {
			d.heapSlots, d.heapCT = b.Blocks, b.Segment
		}
	}
	if d.heapSlots == nil {
		bs := codec.BlockSize(d.l.codec(), segMax)
		d.heapSlots = make([][]byte, d.l.K)
		for i := range d.heapSlots {
			d.heapSlots[i] = make([]byte, bs)
		}
		d.heapCT = make([]byte, segMax)
	}
	d.slots, d.ct = d.heapSlots, d.heapCT
}

// release returns the shared buffers, if the current call took them. Every
// entry point that decodes calls it before it returns, on every path.
func (d *Decoder) release() {
	if d.bufs != nil {
		d.bufs.Release()
		d.bufs, d.slots, d.ct = nil, nil, nil
	}
}

// Close drops the decoder's buffers; later reads fail with ErrClosed.
// Closing is optional (a Decoder holds no shared memory between calls)
// and idempotent.
func (d *Decoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.release()
	d.closed = true
	d.slots, d.ct, d.heapSlots, d.heapCT, d.plain, d.plainIx = nil, nil, nil, nil, nil, -1
	return nil
}

// cipherSegment returns the verified ciphertext of segment i (valid until
// the next call, and until release). The caller calls release when done.
func (d *Decoder) cipherSegment(ctx context.Context, i int) ([]byte, error) {
	if d.closed {
		return nil, ErrClosed
	}
	d.plainIx = -1
	segLen := d.l.SegmentLen(i)
	_, bs := d.l.Block(i)
	d.acquire()
	free := make([][]byte, len(d.slots))
	for j, b := range d.slots {
		free[len(free)-1-j] = b[:bs]
	}
	// Fetch K blocks at once (one per share, each share on its own
	// goroutine: over a network they are K servers); replace every share
	// that fails by the next untried one, in the preferred order, giving
	// it the failed share's slot.
	var used []*shareState
	in := make([][]byte, d.l.N)
	order := d.tryOrder()
	next := 0
	for len(used) < d.l.K {
		var cand []*shareState
		for ; next < len(order) && len(used)+len(cand) < d.l.K; next++ {
			sh := order[next]
			sh.bad, sh.retry = false, time.Time{}
			cand = append(cand, sh)
		}
		if len(cand) == 0 {
			break
		}
		errs := make([]error, len(cand))
		bufs := make([][]byte, len(cand))
		for j := range cand {
			bufs[j] = free[len(free)-1]
			free = free[:len(free)-1]
		}
		fetch := func(j int) {
			bctx := ctx
			if d.opt.ReadTimeout > 0 {
				var cancel context.CancelFunc
				bctx, cancel = context.WithTimeoutCause(ctx, d.opt.ReadTimeout, errReadTimeout)
				defer cancel()
			}
			errs[j] = d.block(bctx, cand[j], i, bufs[j])
		}
		if len(cand) == 1 {
			fetch(0)
		} else {
			var wg sync.WaitGroup
			for j := range cand {
				wg.Add(1)
				go func() { defer wg.Done(); fetch(j) }()
			}
			wg.Wait()
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		for j, sh := range cand {
			if errs[j] == nil {
				used = append(used, sh)
				in[sh.num] = bufs[j]
			} else {
				free = append(free, bufs[j])
			}
		}
	}
	if len(used) < d.l.K {
		return nil, d.notEnough(i, len(used))
	}
	ct := d.ct[:segLen]
	if err := d.codec.Decode(ctx, d.l.codec(), in, ct); err != nil {
		return nil, fmt.Errorf("segment %d: decode: %w", i, err)
	}
	leaf := tagged.Hash(tagged.ChkSegment, ct)
	ok := false
	// The ciphertext tree is the same in every share: take the uncles from
	// a share in use; a share whose copy is wrong is reported and dropped.
	for _, sh := range append(used, d.shares...) {
		if sh.bad || !sh.ready {
			continue
		}
		need := d.cipher.Needed(i)
		given, err := d.readNodes(ctx, sh, d.l.CipherOffset, need)
		if err != nil {
			d.readFailed(ctx, sh, i, err)
			continue
		}
		if err := d.cipher.Verify(i, leaf, given); err != nil {
			if len(need) == 0 {
				break // nothing of a share's was used: the segment itself is wrong
			}
			d.report(sh, i, "ciphertext hash tree", fmt.Errorf("%v: %w", err, ErrCorrupt))
			continue
		}
		ok = true
		break
	}
	if !ok {
		return nil, fmt.Errorf("segment %d: decoded ciphertext does not match the ciphertext hash tree: %w", i, ErrCorrupt)
	}
	return ct, nil
}

func (d *Decoder) notEnough(seg, good int) error {
	found := 0
	for _, s := range d.shares {
		if s.found {
			found++
		}
	}
	return fmt.Errorf("segment %d of %s: %w: %d shares found, %d good, %d needed",
		seg, d.vc.StorageIndex, ErrNotEnoughShares, found, good, d.l.K)
}

// Size is the file's size.
func (d *Decoder) Size() int64 { return d.l.Size }

// Layout is the file's share layout.
func (d *Decoder) Layout() Layout { return d.l }

// Problems lists every share problem met so far.
func (d *Decoder) Problems() []Problem {
	d.pmu.Lock()
	defer d.pmu.Unlock()
	return append([]Problem(nil), d.problems...)
}

// ReadAt implements io.ReaderAt with the context given to NewDecoder.
func (d *Decoder) ReadAt(p []byte, off int64) (int, error) { return d.ReadAtContext(d.ctx, p, off) }

// ReadAtContext reads len(p) bytes at off, fetching only the segments that
// hold them. It returns io.EOF when off+len(p) passes the end.
func (d *Decoder) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("chk read at %d: negative offset", off)
	}
	defer d.release()
	n := 0
	seg := int64(d.l.SegmentSize)
	for n < len(p) {
		pos := off + int64(n)
		if pos >= d.l.Size {
			return n, io.EOF
		}
		i := int(pos / seg)
		start := int64(i) * seg
		if l := d.l.SegmentLen(i); pos == start && len(p)-n >= l {
			// A whole segment: decrypt it straight into p.
			if err := d.segmentInto(ctx, i, p[n:n+l]); err != nil {
				return n, fmt.Errorf("chk read %s: %w", d.vc.StorageIndex, err)
			}
			n += l
			continue
		}
		plain, err := d.segment(ctx, i)
		if err != nil {
			return n, fmt.Errorf("chk read %s: %w", d.vc.StorageIndex, err)
		}
		n += copy(p[n:], plain[pos-start:])
	}
	return n, nil
}

// Reader returns an io.ReadSeeker (and io.ReaderAt) over the whole file.
func (d *Decoder) Reader() *io.SectionReader { return io.NewSectionReader(d, 0, d.l.Size) }

// WriteTo streams the whole file to w. It decodes segment i+1 while w
// takes segment i, so a slow writer and slow servers overlap; memory is two
// more segments.
func (d *Decoder) WriteTo(w io.Writer) (int64, error) {
	type result struct {
		buf []byte
		err error
	}
	bufs := [2][]byte{}
	next := func(i int) <-chan result {
		ch := make(chan result, 1)
		go func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			defer d.release()
			b := grow(bufs[i%2], d.l.SegmentLen(i), d.maxSegment())
			if err := d.segmentInto(d.ctx, i, b); err != nil {
				ch <- result{err: err}
				return
			}
			bufs[i%2] = b
			ch <- result{buf: b}
		}()
		return ch
	}
	var total int64
	pending := next(0)
	for i := 0; i < d.l.Segments; i++ {
		r := <-pending
		if r.err != nil {
			return total, fmt.Errorf("chk read %s: %w", d.vc.StorageIndex, r.err)
		}
		if i+1 < d.l.Segments {
			pending = next(i + 1)
		}
		n, err := w.Write(r.buf)
		total += int64(n)
		if err != nil {
			if i+1 < d.l.Segments {
				<-pending // let the read ahead finish before returning
			}
			return total, err
		}
	}
	return total, nil
}
