package chk

import (
	"context"
	"crypto/cipher"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

// ShareSink receives the bytes of the N shares of one file as the Encoder
// makes them. Every share is exactly Encoder.ShareSize() bytes; each byte is
// written once. The blocks come first (segment by segment, in order), the
// header, extension block and trees last, at Close, in one call per share.
// WriteAt is called concurrently for different share numbers (each share
// usually goes to its own server, so a segment costs one round trip, not
// N), but never concurrently for the same share. It must not keep p after
// it returns.
type ShareSink interface {
	WriteAt(ctx context.Context, shnum int, p []byte, off int64) error
}

// BlockSink is a ShareSink that takes a segment's blocks by reference
// instead of copying them: WriteBlock may keep p (queue it, send it later)
// until it calls release, which it must call exactly once for every call,
// on every path, from any goroutine, before or after returning. The
// Encoder calls WriteBlock for the shares one after another (it must not
// wait for a round trip: queue and return), and reuses a segment's
// buffers only once every block of it was released. Headers and trees
// still go through WriteAt.
type BlockSink interface {
	ShareSink
	WriteBlock(ctx context.Context, shnum int, p []byte, off int64, release func()) error
}

// Encoder turns a file's plaintext into N shares. Memory stays at about
// (1 + N/K) segments per core plus 32 bytes per segment per share for the
// trees (352 KiB per GiB of file at 3-of-10 with 1 MiB segments). With
// GOMAXPROCS > 1 it codes up to GOMAXPROCS segments at once; the sink still
// sees one call at a time, blocks in segment order.
type Encoder struct {
	ctx      context.Context
	l        Layout
	key      cap.Key
	aes      cipher.Block
	codec    codec.Codec
	name     string
	sink     ShareSink
	cur      *job // the segment being filled
	index    int  // segments handed to workers
	inflight []*job
	free     []*job
	workers  int
	leaves   [][]hashtree.Hash
	cipher   []hashtree.Hash
	err      error
	done     bool
	alloc    bufferAllocator // the codec's, when it has one
	jobs     []*job          // every job made, to release their buffers
	bsink    BlockSink       // sink, when it takes blocks by reference
	alias    bool            // lay the K data blocks over the segment (aliasBlocks)

	mu   sync.Mutex // guards lent, job.refs and job.orphan
	lent []*job     // jobs whose blocks a BlockSink released: free again
}

// bufferAllocator is implemented by codecs that can hand out a segment's
// buffers in memory shared with the codec's process (codec.Client and
// pluginhost.Codec): encoding in them sends offsets only, where heap
// buffers are copied into shared memory and the blocks copied back out on
// every call.
type bufferAllocator interface {
	AllocBuffers(p codec.Params, segLen int) (*codec.Buffers, error)
}

// job is one segment in flight, with its own buffers.
type job struct {
	index  int
	seg    []byte
	fill   int
	blocks [][]byte
	bufs   *codec.Buffers // seg and blocks, when the codec allocated them
	// region, when set, holds the segment and the N blocks laid out as
	// the codec makes them: data block i is region[i*bs:(i+1)*bs], the
	// segment's own bytes (and zero padding), then the parity blocks.
	region []byte
	hashes []hashtree.Hash
	segSum hashtree.Hash
	err    error
	done   chan struct{}
	refs   int  // blocks lent to a BlockSink and not released yet
	orphan bool // the encoder is done with it: release bufs at refs 0
}

// NewEncoder starts encoding a file of exactly size bytes (>= 1; an empty
// or small file belongs in a lit cap, see cap.LiteralMax) under key. ctx
// governs every codec and sink call the Encoder makes.
func NewEncoder(ctx context.Context, p Params, key cap.Key, size int64, c codec.Codec, sink ShareSink) (*Encoder, error) {
	l, err := NewLayout(p, size)
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("chk encoder: codec info: %w", err)
	}
	if err := checkCodecName(info.Name); err != nil {
		return nil, fmt.Errorf("chk encoder: %w", err)
	}
	if info.MaxN != 0 && p.N > info.MaxN {
		return nil, fmt.Errorf("chk encoder: codec %s supports N up to %d, not %d", info.Name, info.MaxN, p.N)
	}
	e := &Encoder{ctx: ctx, l: l, key: key, aes: newCipher(key), codec: c, name: info.Name, sink: sink,
		leaves: make([][]hashtree.Hash, p.N), cipher: make([]hashtree.Hash, 0, l.Segments),
		workers: max(1, min(runtime.GOMAXPROCS(0), l.Segments))}
	for i := range e.leaves {
		e.leaves[i] = make([]hashtree.Hash, 0, l.Segments)
	}
	e.alloc, _ = c.(bufferAllocator)
	e.bsink, _ = sink.(BlockSink)
	e.alias = aliasBlocks && info.Name == aliasCodec
	e.cur = e.newJob()
	return e, nil
}

func (e *Encoder) newJob() *job {
	if e.bsink != nil {
		e.mu.Lock()
		if n := len(e.lent); n > 0 {
			j := e.lent[n-1]
			e.lent = e.lent[:n-1]
			e.mu.Unlock()
			j.fill, j.err = 0, nil
			return j
		}
		e.mu.Unlock()
	}
	if n := len(e.free); n > 0 {
		j := e.free[n-1]
		e.free = e.free[:n-1]
		j.fill, j.err = 0, nil
		return j
	}
	segBuf := int(min(int64(e.l.SegmentSize), e.l.Size))
	j := &job{hashes: make([]hashtree.Hash, e.l.N)}
	e.jobs = append(e.jobs, j)
	if e.alias {
		total := e.l.N * codec.BlockSize(e.l.codec(), segBuf)
		if e.alloc != nil {
			j.bufs, j.region = allocRegion(e.alloc, total)
		}
		if j.region == nil {
			j.region = make([]byte, total)
		}
		j.seg, j.blocks = j.region[:segBuf:segBuf], make([][]byte, e.l.N)
		j.carve(codec.BlockSize(e.l.codec(), segBuf))
		return j
	}
	if e.alloc != nil {
		// The segment is filled, encrypted and coded in place and the
		// blocks hashed and sent from where the codec wrote them. An
		// error (a codec without shared memory) means heap buffers.
		if b, err := e.alloc.AllocBuffers(e.l.codec(), segBuf); err == nil && b != nil {
			j.bufs, j.seg, j.blocks = b, b.Segment, b.Blocks
			return j
		}
	}
	bs := codec.BlockSize(e.l.codec(), segBuf)
	j.seg, j.blocks = make([]byte, segBuf), make([][]byte, e.l.N)
	for i := range j.blocks {
		j.blocks[i] = make([]byte, bs)
	}
	return j
}

// Aliased blocks. A systematic codec's first K blocks are the segment
// itself, zero-padded: Reed-Solomon's Encode copied the segment into
// them (a copy of every byte, in the codec's process). Laid out so that
// data block i is the segment's bytes i*bs to (i+1)*bs, the copy is of
// a block onto itself, which the codec skips, and a segment needs N
// blocks of memory instead of N blocks and a segment. Only for the
// built-in codec (aliasCodec), whose Encode is written for it; a codec
// that cleared or wrote its data blocks before reading the segment
// would spoil it. (An older build of that codec copies each block onto
// itself: the same bytes, one copy slower.)
const aliasCodec = "reedsolomon"

// aliasBlocks turns the aliased layout on; tests turn it off to compare.
var aliasBlocks = true

// carve points j's blocks at its region for blocks of bs bytes (the
// last, short segment of a file has smaller ones).
func (j *job) carve(bs int) {
	for i := range j.blocks {
		j.blocks[i] = j.region[i*bs : (i+1)*bs : (i+1)*bs]
	}
}

// allocRegion asks the codec for n contiguous bytes of its shared
// memory. AllocBuffers gives a segment and blocks, not a plain region:
// for K=N=1 and a segment of h = ceil(n/2) bytes it lays out the segment
// and then its one block, both h bytes, in one allocation, the block at
// the segment's length rounded up for alignment (sdk/codec
// Client.AllocBuffers). The region is the segment's start to the
// block's end. That layout is checked, not trusted: anything else gives
// nil, and the caller uses heap memory.
func allocRegion(a bufferAllocator, n int) (*codec.Buffers, []byte) {
	h := (n + 1) / 2
	b, err := a.AllocBuffers(codec.Params{K: 1, N: 1}, h)
	if err != nil || b == nil {
		return nil, nil
	}
	if len(b.Segment) != h || len(b.Blocks) != 1 || len(b.Blocks[0]) != h {
		b.Release()
		return nil, nil
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b.Segment)))
	gap := uintptr(unsafe.Pointer(unsafe.SliceData(b.Blocks[0]))) - start
	if gap < uintptr(h) || gap > uintptr(h)+4096 {
		b.Release()
		return nil, nil
	}
	return b, unsafe.Slice(unsafe.SliceData(b.Segment), int(gap)+h)[:n:n]
}

// release returns every job's codec buffers once no goroutine uses them:
// at once, or, for blocks a BlockSink still holds, when it releases the
// last of them.
func (e *Encoder) release() {
	e.mu.Lock()
	for _, j := range e.jobs {
		if j.refs > 0 {
			j.orphan = true
			continue
		}
		if j.bufs != nil {
			j.bufs.Release()
			j.bufs = nil
		}
	}
	e.jobs, e.free, e.cur, e.lent = nil, nil, nil, nil
	e.mu.Unlock()
}

// unref is the release function of a lent block of j.
func (e *Encoder) unref(j *job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.refs--; j.refs > 0 {
		return
	}
	if j.orphan {
		if j.bufs != nil {
			j.bufs.Release()
			j.bufs = nil
		}
		return
	}
	e.lent = append(e.lent, j)
}

// Abort stops an encoder that will not be closed (its input failed):
// it waits for the segments in flight and returns its buffers. The shares
// written so far are incomplete. Abort after Close, or twice, does nothing.
func (e *Encoder) Abort() {
	if e.done && e.jobs == nil {
		return
	}
	e.done = true
	if e.err == nil {
		e.err = fmt.Errorf("chk encoder: aborted")
	}
	e.abort()
}

// Layout is the file's share layout.
func (e *Encoder) Layout() Layout { return e.l }

// ShareSize is the size of every share, known before any byte is written.
func (e *Encoder) ShareSize() int64 { return e.l.ShareSize }

// Write encrypts, codes and emits full segments as they fill. Writing more
// than the size given to NewEncoder is an error.
func (e *Encoder) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.done {
		return 0, fmt.Errorf("chk encoder: write after close")
	}
	n := 0
	for len(p) > 0 {
		if e.index >= e.l.Segments {
			e.err = fmt.Errorf("chk encoder: more than the declared %d bytes", e.l.Size)
			e.abort()
			return n, e.err
		}
		j := e.cur
		want := e.l.SegmentLen(e.index)
		c := copy(j.seg[j.fill:want], p)
		j.fill += c
		n += c
		p = p[c:]
		if j.fill == want {
			if err := e.dispatch(); err != nil {
				e.err = err
				e.abort()
				return n, err
			}
		}
	}
	return n, nil
}

// ReadFrom reads r to its end straight into the segment buffers (so
// io.Copy into an Encoder copies each byte once, not twice) and encodes as
// Write does. Reading more than the size given to NewEncoder is an error;
// ReadFrom does not Close.
func (e *Encoder) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	var one [1]byte
	for {
		if e.err != nil {
			return total, e.err
		}
		if e.done {
			return total, fmt.Errorf("chk encoder: write after close")
		}
		if e.index >= e.l.Segments {
			// Every declared byte is in: r must be at its end.
			n, err := r.Read(one[:])
			if n > 0 {
				e.err = fmt.Errorf("chk encoder: more than the declared %d bytes", e.l.Size)
				e.abort()
				return total, e.err
			}
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		j := e.cur
		n, err := r.Read(j.seg[j.fill:e.l.SegmentLen(e.index)])
		j.fill += n
		total += int64(n)
		if j.fill == e.l.SegmentLen(e.index) {
			if derr := e.dispatch(); derr != nil {
				e.err = derr
				e.abort()
				return total, derr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// dispatch starts the full current segment and, when as many segments are
// in flight as there are workers, finishes the oldest.
func (e *Encoder) dispatch() error {
	j := e.cur
	j.index = e.index
	e.index++
	if e.workers == 1 {
		e.code(j)
		e.inflight = append(e.inflight, j)
	} else {
		j.done = make(chan struct{})
		e.inflight = append(e.inflight, j)
		go func() { defer close(j.done); e.code(j) }()
	}
	if len(e.inflight) >= e.workers {
		if err := e.finish(); err != nil {
			return err
		}
	}
	if e.index < e.l.Segments {
		e.cur = e.newJob()
	}
	return nil
}

// code encrypts, hashes and erasure-codes one segment; it touches only j.
func (e *Encoder) code(j *job) {
	seg := j.seg[:j.fill]
	xorKeyStream(e.aes, int64(j.index)*int64(e.l.SegmentSize), seg, seg)
	j.segSum = tagged.Hash(tagged.ChkSegment, seg)
	bs := codec.BlockSize(e.l.codec(), len(seg))
	if j.region != nil {
		j.carve(bs) // data blocks over the segment, also for a short one
	}
	blocks := make([][]byte, e.l.N)
	for s := range blocks {
		blocks[s] = j.blocks[s][:bs]
	}
	if err := e.codec.Encode(e.ctx, e.l.codec(), seg, blocks); err != nil {
		j.err = fmt.Errorf("chk encoder: segment %d: %w", j.index, err)
		return
	}
	for s := range blocks {
		j.hashes[s] = tagged.Hash(tagged.ChkBlock, blocks[s])
	}
}

// abort waits for every segment in flight and drops it, so no goroutine
// outlives a failed encoder.
func (e *Encoder) abort() {
	for _, j := range e.inflight {
		if j.done != nil {
			<-j.done
		}
	}
	e.inflight = nil
	e.release()
}

// finish waits for the oldest segment in flight and writes its blocks.
func (e *Encoder) finish() error {
	j := e.inflight[0]
	e.inflight = e.inflight[1:]
	if j.done != nil {
		<-j.done
	}
	if j.err != nil {
		return j.err
	}
	e.cipher = append(e.cipher, j.segSum)
	boff, n := e.l.Block(j.index)
	for s := range j.blocks {
		e.leaves[s] = append(e.leaves[s], j.hashes[s])
	}
	if e.bsink != nil {
		return e.lend(j, boff, n)
	}
	err := e.writeAll(func(s int) error {
		if err := e.sink.WriteAt(e.ctx, s, j.blocks[s][:n], boff); err != nil {
			return fmt.Errorf("chk encoder: write block %d of share %d: %w", j.index, s, err)
		}
		return nil
	})
	e.free = append(e.free, j)
	return err
}

// lend hands j's blocks to the BlockSink; j becomes free again when the
// sink has released all of them.
func (e *Encoder) lend(j *job, boff int64, n int) error {
	e.mu.Lock()
	j.refs = e.l.N
	e.mu.Unlock()
	release := func() { e.unref(j) }
	var first error
	for s := range j.blocks {
		if first != nil {
			release() // not handed over
			continue
		}
		if err := e.bsink.WriteBlock(e.ctx, s, j.blocks[s][:n], boff, release); err != nil {
			first = fmt.Errorf("chk encoder: write block %d of share %d: %w", j.index, s, err)
		}
	}
	return first
}

// writeAll runs write for every share number at once and returns the error
// of the lowest-numbered share that failed.
func (e *Encoder) writeAll(write func(s int) error) error {
	if e.l.N == 1 {
		return write(0)
	}
	errs := make([]error, e.l.N)
	var wg sync.WaitGroup
	for s := 0; s < e.l.N; s++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[s] = write(s) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close checks that the whole file was written, builds the trees and the
// extension block, writes each share's header and trees, and returns the
// read cap. The shares are complete when it returns nil.
func (e *Encoder) Close() (cap.CHK, error) {
	if e.err != nil {
		e.abort() // returns the buffers, if an error left them
		return cap.CHK{}, e.err
	}
	if e.done {
		return cap.CHK{}, fmt.Errorf("chk encoder: closed twice")
	}
	e.done = true
	if e.index != e.l.Segments {
		got := int64(e.index)*int64(e.l.SegmentSize) + int64(e.cur.fill)
		e.err = fmt.Errorf("chk encoder: got %d bytes of the declared %d", got, e.l.Size)
		e.abort()
		return cap.CHK{}, e.err
	}
	for len(e.inflight) > 0 {
		if err := e.finish(); err != nil {
			e.err = err
			e.abort()
			return cap.CHK{}, err
		}
	}
	e.release() // every block is written: the rest needs no segment buffers
	ct, err := hashtree.Build(tagged.ChkCiphertextNode, e.cipher)
	if err != nil {
		return cap.CHK{}, err
	}
	btrees := make([]*hashtree.Tree, e.l.N)
	roots := make([]hashtree.Hash, e.l.N)
	for s := range btrees {
		if btrees[s], err = hashtree.Build(tagged.ChkBlockTreeNode, e.leaves[s]); err != nil {
			return cap.CHK{}, err
		}
		roots[s] = btrees[s].Root()
	}
	st, err := hashtree.Build(tagged.ChkShareTreeNode, roots)
	if err != nil {
		return cap.CHK{}, err
	}
	u := UEB{K: e.l.K, N: e.l.N, SegmentSize: e.l.SegmentSize, Size: e.l.Size, Codec: e.name,
		ShareRoot: st.Root(), CiphertextRoot: ct.Root()}
	ueb := u.Marshal()
	ctBytes := ct.Bytes()
	// Big files (trees over 1 MiB) write one share's trees at a time, so
	// that Close never holds N copies of them.
	var shared []byte
	writeAll := e.writeAll
	if e.l.BlocksOffset > 1<<20 {
		shared = make([]byte, e.l.BlocksOffset)
		writeAll = func(write func(int) error) error {
			for s := 0; s < e.l.N; s++ {
				if err := write(s); err != nil {
					return err
				}
			}
			return nil
		}
	}
	err = writeAll(func(s int) error {
		buf := shared
		if buf == nil {
			buf = make([]byte, e.l.BlocksOffset)
		}
		copy(buf, e.l.Header(s).Marshal())
		copy(buf[e.l.UEBOffset:], ueb)
		proof, err := st.Proof(s)
		if err != nil {
			return err
		}
		for j, h := range proof {
			copy(buf[e.l.ProofOffset+int64(j)*tagged.Size:], h[:])
		}
		copy(buf[e.l.BlockTreeOffset:], btrees[s].Bytes())
		copy(buf[e.l.CipherOffset:], ctBytes)
		if err := e.sink.WriteAt(e.ctx, s, buf, 0); err != nil {
			return fmt.Errorf("chk encoder: write header and trees of share %d: %w", s, err)
		}
		return nil
	})
	if err != nil {
		e.err = err
		return cap.CHK{}, err
	}
	return cap.CHK{Key: e.key, UEBHash: u.Hash(), K: e.l.K, N: e.l.N, Size: e.l.Size}, nil
}

// MemShares keeps N shares in memory; it is both a ShareSink and a
// ShareSource (for tests and small in-process uses).
type MemShares struct {
	mu     sync.Mutex
	Shares [][]byte
}

// NewMemShares makes n zeroed shares of size bytes.
func NewMemShares(n int, size int64) *MemShares {
	m := &MemShares{Shares: make([][]byte, n)}
	for i := range m.Shares {
		m.Shares[i] = make([]byte, size)
	}
	return m
}

var (
	_ ShareSink   = (*MemShares)(nil)
	_ ShareSource = (*MemShares)(nil)
)

// WriteAt copies p into share shnum at off.
func (m *MemShares) WriteAt(_ context.Context, shnum int, p []byte, off int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if shnum < 0 || shnum >= len(m.Shares) || m.Shares[shnum] == nil {
		return fmt.Errorf("memory share %d: no such share", shnum)
	}
	sh := m.Shares[shnum]
	if off < 0 || off+int64(len(p)) > int64(len(sh)) {
		return fmt.Errorf("memory share %d: write %d bytes at %d past its %d bytes", shnum, len(p), off, len(sh))
	}
	copy(sh[off:], p)
	return nil
}

// ReadAt reads share shnum like io.ReaderAt; a nil share is missing.
func (m *MemShares) ReadAt(_ context.Context, shnum int, p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if shnum < 0 || shnum >= len(m.Shares) || m.Shares[shnum] == nil {
		return 0, fmt.Errorf("memory share %d: %w", shnum, errMissing)
	}
	sh := m.Shares[shnum]
	if off < 0 || off > int64(len(sh)) {
		return 0, fmt.Errorf("memory share %d: read at %d past its %d bytes", shnum, off, len(sh))
	}
	n := copy(p, sh[off:])
	if n < len(p) {
		return n, errShort
	}
	return n, nil
}

// WriterAts is a ShareSink over one io.WriterAt per share (files, buffers).
type WriterAts []io.WriterAt

// WriteAt writes p to share shnum's writer at off.
func (w WriterAts) WriteAt(_ context.Context, shnum int, p []byte, off int64) error {
	if shnum < 0 || shnum >= len(w) || w[shnum] == nil {
		return fmt.Errorf("share %d: no writer", shnum)
	}
	if _, err := w[shnum].WriteAt(p, off); err != nil {
		return fmt.Errorf("share %d: %w", shnum, err)
	}
	return nil
}

// ReaderAts is a ShareSource over one io.ReaderAt per share; a nil entry is
// a missing share.
type ReaderAts []io.ReaderAt

// ReadAt reads share shnum's reader at off.
func (r ReaderAts) ReadAt(_ context.Context, shnum int, p []byte, off int64) (int, error) {
	if shnum < 0 || shnum >= len(r) || r[shnum] == nil {
		return 0, fmt.Errorf("share %d: %w", shnum, errMissing)
	}
	return r[shnum].ReadAt(p, off)
}

var (
	_ ShareSink   = WriterAts(nil)
	_ ShareSource = ReaderAts(nil)
)
