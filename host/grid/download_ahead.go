package grid

import (
	"context"
	"io"
	"sync"
)

// Read-ahead of blocks during a whole-file read (File.WriteTo). Reading
// one block per ReadShare call costs a round trip and a stream per block
// (768 calls for 256 MiB at 3-of-5), and the decoders of consecutive
// segments wait on them together. During WriteTo a share's blocks are
// instead fetched aheadSegs segments at a time, one call per window, and
// the window after the one being read is fetched in the background. Range
// reads (ReadAt, download_range.go) use the same windows for the groups of
// segments they read ahead of a sequential reader, one window at a time;
// their other reads fetch each block on its own.
const (
	aheadSegs = 4
	// aheadWins bounds the windows cached per share: the one being read,
	// the next, and those a slow decoder may still be on (a window is
	// dropped as soon as all its blocks were read).
	aheadWins = 4
)

// aheadKey marks a context whose block reads go through the read-ahead;
// its value is the *aheadRun of the WriteTo.
type aheadKey struct{}

// aheadRun is one WriteTo's read-ahead, or one group of segments read
// ahead of a range reader (download_range.go): its background fetches run
// under ctx (cancelled when it ends) and are counted in wg. noNext: a
// window's read does not start the next window (a range reader's groups
// are started one by one).
type aheadRun struct {
	ctx    context.Context
	wg     sync.WaitGroup
	noNext bool
}

// blockSpan is where a share's blocks lie: from off, span bytes per
// window, up to end.
type blockSpan struct {
	off, end, span int64
}

// blockWin is one window of a share's blocks, fetched once. refs counts
// readers copying out of it; read the bytes they took. The buffer goes
// back to the source's free list once every byte was read and no one is
// copying, or when the read-ahead ends.
type blockWin struct {
	done     chan struct{} // closed once buf or err is set
	buf      []byte
	err      error
	refs     int
	read     int64
	fetching bool
	freed    bool
	run      *aheadRun // whose read-ahead fetches it
}

// setBlocks turns the read-ahead on for this source's blocks.
func (s *shareSource) setBlocks(b blockSpan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks = b
}

// readAhead reads p at off of share sh through the block windows, if ctx
// asks for read-ahead and [off, off+len(p)) lies in one window; ok false
// means the caller reads directly.
func (s *shareSource) readAhead(ctx context.Context, sh int, p []byte, off int64) (n int, ok bool, err error) {
	bg, _ := ctx.Value(aheadKey{}).(*aheadRun)
	s.mu.Lock()
	b := s.blocks
	s.mu.Unlock()
	if bg == nil || b.span == 0 || off < b.off || off+int64(len(p)) > b.end {
		return 0, false, nil
	}
	start := b.off + (off-b.off)/b.span*b.span
	if off+int64(len(p)) > start+b.span {
		return 0, false, nil
	}
	w, err := s.blockWindow(ctx, bg, sh, start, b, !bg.noNext)
	if err != nil {
		return 0, true, err
	}
	defer s.doneWith(sh, start, w, int64(len(p)))
	if off-start >= int64(len(w.buf)) {
		return 0, true, io.EOF // the share ends before the block: short
	}
	n = copy(p, w.buf[off-start:])
	if n < len(p) {
		return n, true, io.EOF
	}
	return n, true, nil
}

// blockWindow returns the window of sh at start, holding a reference.
// Windows are fetched in the background under bg (so that a reader that
// gives up does not fail the others waiting on the same window); when
// ahead, the next window is started too.
func (s *shareSource) blockWindow(ctx context.Context, bg *aheadRun, sh int, start int64, b blockSpan, ahead bool) (*blockWin, error) {
	for {
		w, err := s.tryWindow(ctx, bg, sh, start, b, ahead)
		if err != nil && w != nil && w.run != bg && w.run.ctx.Err() != nil && bg.ctx.Err() == nil {
			continue // fetched for another WriteTo, which ended: fetch again
		}
		return w, err
	}
}

// tryWindow is one attempt of blockWindow; on an error it may return the
// failed window too, to say whose fetch it was.
func (s *shareSource) tryWindow(ctx context.Context, bg *aheadRun, sh int, start int64, b blockSpan, ahead bool) (*blockWin, error) {
	s.mu.Lock()
	w, ok := s.ahead[sh][start]
	if !ok {
		w = s.startLocked(bg, sh, start, b)
	}
	if ahead && len(s.ahead[sh]) < aheadWins {
		// (Never evict for a prefetch: a window being read may still be
		// needed by a decoder behind the others.)
		s.startLocked(bg, sh, start+b.span, b)
	}
	w.refs++
	s.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		s.doneWith(sh, start, w, 0)
		return nil, ctx.Err()
	}
	if w.err != nil {
		// Every holder failed (or the read-ahead is over); the window
		// left the cache, so a later read tries again.
		s.doneWith(sh, start, w, 0)
		return w, w.err
	}
	return w, nil
}

// startLocked starts fetching the window at start, unless it is past the
// blocks or cached already (then it returns the cached one), or the
// read-ahead is over (then a window failed with bg's error).
func (s *shareSource) startLocked(bg *aheadRun, sh int, start int64, b blockSpan) *blockWin {
	if w, ok := s.ahead[sh][start]; ok {
		return w
	}
	if start >= b.end {
		return nil
	}
	if err := bg.ctx.Err(); err != nil {
		w := &blockWin{done: make(chan struct{}), err: err, run: bg}
		close(w.done)
		return w
	}
	w := s.newWinLocked(sh, start)
	w.run = bg
	bg.wg.Add(1)
	go func() {
		defer bg.wg.Done()
		s.fetchWin(bg.ctx, sh, start, b, w)
	}()
	return w
}

// newWinLocked puts a new window in the cache, evicting the lowest when
// the share has aheadWins already.
func (s *shareSource) newWinLocked(sh int, start int64) *blockWin {
	m := s.ahead[sh]
	if m == nil {
		m = map[int64]*blockWin{}
		s.ahead[sh] = m
	}
	if len(m) >= aheadWins {
		low := int64(-1)
		for k := range m {
			if low < 0 || k < low {
				low = k
			}
		}
		s.dropLocked(sh, low, m[low])
	}
	w := &blockWin{done: make(chan struct{}), fetching: true}
	m[start] = w
	return w
}

// fetchWin fills w with the window's bytes (or its error) and closes done;
// a failed window leaves the cache so that the next reader tries again.
func (s *shareSource) fetchWin(ctx context.Context, sh int, start int64, b blockSpan, w *blockWin) {
	end := min(start+b.span, b.end)
	buf := s.winBuf(int(b.span))[:end-start]
	n, err := s.fetch(ctx, sh, buf, start)
	if err == io.EOF && n > 0 {
		err = nil // a short share: the decoder finds the blocks short
	}
	s.mu.Lock()
	w.buf, w.err, w.fetching = buf[:n], err, false
	if err != nil {
		s.free = append(s.free, buf[:0])
		w.buf = nil
		s.dropLocked(sh, start, w)
	} else {
		s.freeLocked(w) // if it was dropped while fetched
	}
	s.mu.Unlock()
	close(w.done)
}

// doneWith releases a reader's reference, counting read bytes taken.
func (s *shareSource) doneWith(sh int, start int64, w *blockWin, read int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.refs--
	w.read += read
	if w.err == nil && w.read >= int64(len(w.buf)) {
		s.dropLocked(sh, start, w) // every block read: done with it
	} else if w.freed {
		s.freeLocked(w)
	}
}

// dropLocked takes w out of the cache and frees its buffer unless someone
// still reads or fills it.
func (s *shareSource) dropLocked(sh int, start int64, w *blockWin) {
	if s.ahead[sh][start] == w {
		delete(s.ahead[sh], start)
	}
	w.freed = true
	s.freeLocked(w)
}

// freeLocked returns a dropped window's buffer to the free list once no
// reader holds it and its fetch is over.
func (s *shareSource) freeLocked(w *blockWin) {
	if !w.freed || w.refs > 0 || w.fetching || w.buf == nil {
		return
	}
	s.free = append(s.free, w.buf[:0])
	w.buf = nil
}

// winBuf returns a window buffer of n bytes, reused when one is free.
func (s *shareSource) winBuf(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.free) > 0 {
		b := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		if cap(b) >= n {
			return b[:n]
		}
	}
	return make([]byte, n)
}

// endAhead ends a read-ahead: it waits for its background fetches (whose
// context the caller has cancelled) and drops the windows it fetched
// (those of another read-ahead of the same file stay); the free buffers
// go once no window is left.
func (s *shareSource) endAhead(run *aheadRun) {
	run.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	left := 0
	for sh, m := range s.ahead {
		for start, w := range m {
			if w.run == run {
				s.dropLocked(sh, start, w)
			} else {
				left++
			}
		}
	}
	if left == 0 {
		s.free = nil
	}
}

// aheadCached counts the windows cached and the buffers held (tests).
func (s *shareSource) aheadCached() (wins, free int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.ahead {
		wins += len(m)
	}
	return wins, len(s.free)
}
