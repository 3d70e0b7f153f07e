package grid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/tarnfs/tarn/host/chk"
)

// Range reads (File.ReadAt). A server answering a client's reads calls
// ReadAt with small pieces, several at once and not quite in order: an
// SFTP client keeps 64 requests of 32 KiB in flight, rclone's multi-thread
// get reads a big file as 4 such streams at 4 offsets, each on a handle
// of its own, and WebDAV range GETs read a range piece by piece. With one
// decoder holding one decoded segment, a piece of segment i+1 read before
// the last pieces of segment i made the decoder fetch and decode segment
// i again (a 4-stream rclone get fetched 1.45x the file's share bytes and
// doubled the storage nodes' CPU per byte), and every segment cost a
// read_share call per block.
//
// So a File's range reads go through a cache of decoded segments, each
// decoded once however many reads want it at the same time (and dropped
// as soon as all its bytes were read); and a reader seen moving from one
// segment to the next (a cursor) has the segments ahead of it decoded in
// the background, aheadSegs segments (one read-ahead window of each
// share: one read_share call per share) at a time, so a group is fetched
// as the reader enters the one before. Reads that are not sequential
// decode only the segment they touch, block by block, as before.
const (
	// rangeCursors is how many sequential readers of one File are told
	// apart (rclone's 4 streams read 4 handles, but a File may be shared).
	rangeCursors = 4
	// rangeSegsMax bounds the decoded segments a File keeps: those being
	// read (an SFTP client's 64 reads of 32 KiB in flight span 2 or 3),
	// and up to two groups read ahead.
	rangeSegsMax = 3 * aheadSegs
	// rangeSegsRandom bounds them while no reader of the File was seen
	// reading on: reads here and there (a mount reading pieces of many
	// open files) keep little.
	rangeSegsRandom = 2
)

// rangeCache is a File's decoded segments and read-ahead for ReadAt.
type rangeCache struct {
	f *File
	l chk.Layout

	mu      sync.Mutex
	segs    map[int]*segEntry
	tick    uint64
	cursors [rangeCursors]rangeCursor
	maxDecs int
	// slots holds maxDecs tokens: a decode takes one (waiting while
	// maxDecs decodes run), then an idle decoder, or makes one.
	slots   chan struct{}
	idle    []*chk.Decoder // f.dec first
	retired int            // decoders dropped after a cancelled decode (tests)
	peak    int            // the most segments cached at once (tests)
	bg      sync.WaitGroup // read-ahead goroutines (tests wait on them)
}

// segEntry is one decoded segment, filled once.
type segEntry struct {
	done    chan struct{} // closed once buf or err is set
	buf     *[]byte
	err     error
	refs    int   // readers copying out of it
	read    int64 // bytes readers took
	used    uint64
	filling bool
	gone    bool // out of the cache: its buffer is freed once unused
}

// rangeCursor is where one sequential reader is: the highest segment it
// read, and how many times it moved on to a next one.
type rangeCursor struct {
	seg  int
	hits int
	used uint64
	live bool
}

// ranges returns the File's range cache, made at the first range read.
func (f *File) ranges() *rangeCache {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rc == nil {
		n := max(2, min(runtime.GOMAXPROCS(0), readAhead))
		f.rc = &rangeCache{f: f, l: f.dec.Layout(), segs: map[int]*segEntry{}, maxDecs: n,
			slots: make(chan struct{}, n), idle: []*chk.Decoder{f.dec}}
	}
	return f.rc
}

// readAt reads p at off through the cache.
func (rc *rangeCache) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	l := rc.l
	if off < 0 {
		return 0, fmt.Errorf("chk read %s at %d: negative offset", rc.f.src.si, off)
	}
	if off >= l.Size || len(p) == 0 {
		if off >= l.Size {
			return 0, io.EOF
		}
		return 0, nil
	}
	segSize := int64(l.SegmentSize)
	last := min(off+int64(len(p)), l.Size) - 1
	rc.advance(int(off/segSize), int(last/segSize))
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= l.Size {
			return n, io.EOF
		}
		i := int(pos / segSize)
		start := int64(i) * segSize
		if sl := l.SegmentLen(i); pos == start && len(p)-n >= sl && !rc.has(i) {
			// A whole segment no one else has or fetches: decrypt it
			// straight into p.
			if err := rc.decode(ctx, i, p[n:n+sl]); err != nil {
				return n, err
			}
			n += sl
			continue
		}
		e, err := rc.get(ctx, i)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], (*e.buf)[pos-start:])
		rc.release(i, e, int64(k))
		n += k
	}
	return n, nil
}

// has reports whether segment i is cached or being decoded.
func (rc *rangeCache) has(i int) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.segs[i] != nil
}

// get returns segment i decoded, holding a reference (release it): from
// the cache, or decoded by this call.
func (rc *rangeCache) get(ctx context.Context, i int) (*segEntry, error) {
	for {
		rc.mu.Lock()
		rc.tick++
		e := rc.segs[i]
		fill := e == nil
		if fill {
			e = rc.addLocked(i)
		}
		e.refs++
		e.used = rc.tick
		rc.mu.Unlock()
		if fill {
			rc.fill(ctx, i, e)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			rc.release(i, e, 0)
			return nil, rc.ctxErr(ctx, i)
		}
		if e.err == nil {
			return e, nil
		}
		rc.release(i, e, 0)
		// Another read that gave up (its context ended), or a read-ahead
		// that ended (its File's), is not this read's failure: decode it
		// again, here unless someone else is at it already (the failed
		// entry left the cache). Each turn is a decode that ended.
		if fill || ctx.Err() != nil || !isCtxErr(e.err) {
			return nil, e.err
		}
	}
}

// ctxErr is the error of a read of segment i whose context ended.
func (rc *rangeCache) ctxErr(ctx context.Context, i int) error {
	return fmt.Errorf("chk read %s: segment %d: %w", rc.f.src.si, i, ctx.Err())
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// addLocked puts a new entry for segment i in the cache, being filled,
// after making room for it (roomLocked, any segment not being filled may
// go): a read needs its segment even when every cached one is being
// filled, so the cache may hold more than its limit until those are.
func (rc *rangeCache) addLocked(i int) *segEntry {
	rc.roomLocked(true)
	e := &segEntry{done: make(chan struct{}), filling: true, used: rc.tick}
	rc.segs[i] = e
	if len(rc.segs) > rc.peak {
		rc.peak = len(rc.segs)
	}
	return e
}

// roomLocked evicts segments until fewer than the limit are cached:
// the least recently used of those a reader began (a piece left behind
// is older than the pieces being read), then, if unread, those read
// ahead and not read yet. It reports whether there is room now (no
// segment being filled, or read ahead and unread when not unread, may go).
func (rc *rangeCache) roomLocked(unread bool) bool {
	limit := rangeSegsRandom
	for _, c := range rc.cursors {
		if c.live && c.hits > 0 {
			limit = rangeSegsMax
		}
	}
	for len(rc.segs) >= limit {
		low, lowSeg := (*segEntry)(nil), 0
		for j, e := range rc.segs {
			if e.filling || e.read == 0 && !unread {
				continue
			}
			if low == nil || (e.read > 0) != (low.read > 0) && e.read > 0 ||
				(e.read > 0) == (low.read > 0) && e.used < low.used {
				low, lowSeg = e, j
			}
		}
		if low == nil {
			return false
		}
		rc.dropLocked(lowSeg, low)
	}
	return true
}

// fill decodes segment i into e under ctx, and closes e.done; a failed
// entry leaves the cache so that the next read tries again.
func (rc *rangeCache) fill(ctx context.Context, i int, e *segEntry) {
	var buf *[]byte
	err := rc.decodeWith(ctx, i, func() []byte {
		// (Taken once a decoder is: a fill waiting for one holds no
		// segment buffer.)
		buf = getBuf(rc.l.SegmentLen(i))
		return *buf
	})
	rc.mu.Lock()
	e.filling = false
	if err != nil {
		e.err = err
		if buf != nil {
			bufPool.Put(buf)
		}
		rc.dropLocked(i, e)
	} else {
		e.buf = buf
		rc.freeLocked(e)
	}
	rc.mu.Unlock()
	close(e.done)
}

// decode decodes segment i into dst (its length) with an idle decoder.
func (rc *rangeCache) decode(ctx context.Context, i int, dst []byte) error {
	return rc.decodeWith(ctx, i, func() []byte { return dst })
}

// decodeWith decodes segment i into the buffer dst returns (called once
// a decoder is taken) with an idle decoder, or one made for it.
func (rc *rangeCache) decodeWith(ctx context.Context, i int, dst func() []byte) error {
	d, err := rc.take(ctx, i)
	if err != nil {
		return err
	}
	_, err = d.ReadAtContext(ctx, dst(), int64(i)*int64(rc.l.SegmentSize))
	if err == io.EOF {
		err = nil // (the file's last byte)
	}
	// A decoder whose decode was cancelled has marked the shares it was
	// reading as failed (chk.Decoder reports a read that ends with its
	// context like any other failed read, and never uses that share
	// again): lent again, it would fail every later read of the File
	// with "not enough good shares". It is dropped; the next decode
	// makes a fresh one (the share source keeps the trees it read).
	rc.put(d, err == nil || ctx.Err() == nil)
	return err
}

// take returns an idle decoder, or makes one while fewer than maxDecs
// decode, else waits for one. It is given back with put.
func (rc *rangeCache) take(ctx context.Context, i int) (*chk.Decoder, error) {
	select {
	case rc.slots <- struct{}{}:
	default:
		select {
		case rc.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, rc.ctxErr(ctx, i)
		}
	}
	rc.mu.Lock()
	if k := len(rc.idle); k > 0 {
		d := rc.idle[k-1]
		rc.idle = rc.idle[:k-1]
		rc.mu.Unlock()
		return d, nil
	}
	rc.mu.Unlock()
	// The order of the file's first decoder, while no share failed:
	// decoders of one group that read other shares would each fetch a
	// window of their own.
	f := rc.f
	f.mu.Lock()
	order := f.order
	if len(f.reported) > 0 {
		order = nil
	}
	f.mu.Unlock()
	if order == nil {
		order = f.src.order()
	}
	// Under this read's context (the File's may have ended: a File
	// read with contexts of its own).
	d, err := f.newDecoderOrder(ctx, order)
	if err != nil {
		<-rc.slots
		return nil, fmt.Errorf("segment %d: %w", i, err)
	}
	f.mu.Lock()
	f.extra = append(f.extra, d)
	f.mu.Unlock()
	return d, nil
}

// put gives back a decoder take returned: idle again when ok, else
// dropped (its buffers freed; f.dec is only left out).
func (rc *rangeCache) put(d *chk.Decoder, ok bool) {
	rc.mu.Lock()
	if ok {
		rc.idle = append(rc.idle, d)
	} else {
		rc.retired++
	}
	rc.mu.Unlock()
	if !ok && d != rc.f.dec {
		d.Close()
	}
	<-rc.slots
}

// release drops a reader's reference to segment i, counting the bytes it
// took; a segment whose every byte was read leaves the cache.
func (rc *rangeCache) release(i int, e *segEntry, read int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e.refs--
	e.read += read
	if e.err == nil && !e.filling && e.read >= int64(len(*e.buf)) {
		rc.dropLocked(i, e)
		return
	}
	rc.freeLocked(e)
}

// dropLocked takes e out of the cache; its buffer goes back to the pool
// once no one reads or fills it.
func (rc *rangeCache) dropLocked(i int, e *segEntry) {
	if rc.segs[i] == e {
		delete(rc.segs, i)
	}
	e.gone = true
	rc.freeLocked(e)
}

func (rc *rangeCache) freeLocked(e *segEntry) {
	if !e.gone || e.refs > 0 || e.filling || e.buf == nil {
		return
	}
	bufPool.Put(e.buf)
	e.buf = nil
}

// advance notes a read of segments a to b. A read at or just after a
// cursor moves it; a read elsewhere starts a new cursor (in place of the
// least recently used). A cursor that moved on to a next segment has the
// aheadSegs segments after b decoded in the background.
func (rc *rangeCache) advance(a, b int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tick++
	var c *rangeCursor
	for k := range rc.cursors {
		x := &rc.cursors[k]
		// Pieces in flight arrive a little out of order: a read a
		// little behind the cursor is still its reader's, and so is
		// one that passed the read before it (as long as itself).
		if x.live && a <= x.seg+1+(b-a+1) && b+2*aheadSegs >= x.seg {
			c = x
			break
		}
	}
	if c == nil {
		c = &rc.cursors[0]
		for k := range rc.cursors {
			if x := &rc.cursors[k]; !x.live || x.used < c.used {
				c = x
			}
		}
		*c = rangeCursor{seg: b, used: rc.tick, live: true}
		return
	}
	c.used = rc.tick
	if b <= c.seg {
		return
	}
	c.hits++
	c.seg = b
	if rc.f.ctx.Err() != nil || rc.f.writing.Load() > 0 {
		// No read-ahead for a File whose context ended, nor while a
		// WriteTo of it fetches every segment (an SFTP handle's stream:
		// its client's reads too far ahead of the stream come here).
		return
	}
	end := min(b+aheadSegs, rc.l.Segments-1)
	for i := b + 1; i <= end; {
		g := i / aheadSegs
		gEnd := min((g+1)*aheadSegs, rc.l.Segments) - 1
		rc.aheadLocked(g, i, min(gEnd, end))
		i = gEnd + 1
	}
}

// aheadLocked starts decoding segments from to to of group g (aheadSegs
// segments from g*aheadSegs) that are not cached. A group wholly ahead of
// the reader (from is its first segment) none of whose segments are
// cached is fetched whole: one read-ahead window of each share for all
// its segments; otherwise each missing segment is decoded on its own,
// block by block (a window would fetch again blocks the reader has
// decoded already).
func (rc *rangeCache) aheadLocked(g, from, to int) {
	first := g * aheadSegs
	last := min(first+aheadSegs, rc.l.Segments) - 1
	whole := from == first
	for i := first; i <= last && whole; i++ {
		if rc.segs[i] != nil {
			whole = false
			break
		}
	}
	if whole {
		from, to = first, last
	}
	var todo []int
	var ents []*segEntry
	for i := from; i <= to; i++ {
		if rc.segs[i] != nil {
			continue
		}
		// Reading ahead never takes the place of a segment read ahead
		// and not read yet, nor of one being filled: with more readers
		// than the cache holds groups for, some are not read ahead.
		if !rc.roomLocked(false) {
			break
		}
		todo = append(todo, i)
		ents = append(ents, rc.addLocked(i))
	}
	if len(todo) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(rc.f.ctx)
	var run *aheadRun
	fctx := ctx
	if whole {
		// Block reads of these decodes go through the read-ahead
		// windows: one call per share for the group.
		run = &aheadRun{ctx: ctx, noNext: true}
		fctx = context.WithValue(ctx, aheadKey{}, run)
	}
	workers := min(len(todo), rc.maxDecs)
	next := make(chan int, len(todo))
	for k := range todo {
		next <- k
	}
	close(next)
	var wg sync.WaitGroup
	rc.bg.Add(1)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				rc.fill(fctx, todo[k], ents[k])
			}
		}()
	}
	go func() {
		defer rc.bg.Done()
		wg.Wait()
		cancel()
		if run != nil {
			rc.f.src.endAhead(run)
		}
	}()
}

// cachedSegs counts the decoded segments cached (tests).
func (rc *rangeCache) cachedSegs() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.segs)
}
