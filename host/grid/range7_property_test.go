package grid_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/sdk/storage"
)

// checkRange reads n bytes at off of f under ctx and checks what
// io.ReaderAt promises against the plaintext: the count (all of it up to
// the end of the file), every byte, io.EOF exactly when the range passes
// the end (or may when it ends there), no error otherwise.
func checkRange(ctx context.Context, f *grid.File, data []byte, off int64, n int) error {
	size := int64(len(data))
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = 0xa5 // not what a read left unwritten looks like
	}
	got, err := f.ReadAtContext(ctx, buf, off)
	want := 0
	if off < size {
		want = int(min(int64(n), size-off))
	}
	if got != want {
		return fmt.Errorf("read %d bytes at %d of %d: got %d, want %d: %v", n, off, size, got, want, err)
	}
	if got > 0 && !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
		for i := range got {
			if buf[i] != data[off+int64(i)] {
				return fmt.Errorf("read %d bytes at %d of %d: wrong byte at %d", n, off, size, off+int64(i))
			}
		}
	}
	end := off + int64(n)
	switch {
	case end > size && n > 0 && err != io.EOF:
		return fmt.Errorf("read %d bytes at %d of %d: err %v, want io.EOF", n, off, size, err)
	case end < size && err != nil, n == 0 && off < size && err != nil:
		return fmt.Errorf("read %d bytes at %d of %d: %v", n, off, size, err)
	case end == size && err != nil && err != io.EOF:
		return fmt.Errorf("read %d bytes at %d of %d (to the end): %v", n, off, size, err)
	}
	return nil
}

// pickRange draws a range of a file of size bytes in segments of segSize,
// favouring the edges: segment boundaries, whole segments, the end of the
// file, empty ranges and ranges past the end.
func pickRange(r *mrand.Rand, size, segSize int64) (int64, int) {
	segs := (size + segSize - 1) / segSize
	in := func() int64 { return r.Int64N(size) }
	switch r.IntN(9) {
	case 0: // anywhere, up to 3 segments long
		return in(), 1 + r.IntN(int(3*segSize))
	case 1: // around a segment boundary
		off := max(0, r.Int64N(segs+1)*segSize+r.Int64N(5)-2)
		return off, 1 + r.IntN(int(2*segSize))
	case 2: // whole segments, aligned
		return r.Int64N(segs) * segSize, int(segSize) * (1 + r.IntN(3))
	case 3: // to the end exactly
		off := in()
		return off, int(size - off)
	case 4: // past the end
		off := in()
		return off, int(size-off) + 1 + r.IntN(100)
	case 5: // empty
		return r.Int64N(size + 2), 0
	case 6: // at or after the end
		return size + r.Int64N(3), 1 + r.IntN(10)
	case 7: // one byte
		return in(), 1
	default: // the last segment's edges
		last := (segs - 1) * segSize
		return last + r.Int64N(min(3, size-last)), int(size - last)
	}
}

// range7Reads is the random reads of each of 4 readers of a File (fewer
// under the race detector, which slows decoding tenfold).
var range7Reads = map[bool]int{false: 40, true: 12}[raceEnabled]

// range7Params are the encodings the property tests cover; damage: the
// damage test covers it (shares larger than one 32 KiB window, so that
// groups are fetched through the read-ahead windows).
var range7Params = []struct {
	name    string
	k, h, n int
	segSize int
	sizes   []int
	damage  bool
}{
	{"3-of-5 16 KiB segments", 3, 4, 5, 16 << 10, []int{
		56,                // smallest chk file: one short segment
		16 << 10,          // exactly one segment
		16<<10 + 1,        // a 1-byte tail (smaller than K)
		16<<10 + 2,        // a 2-byte tail (smaller than K)
		2 * 16 << 10,      // two whole segments
		9*16<<10 + 1,      // groups, a 1-byte tail
		13*16<<10 - 12345, // groups, a short tail
	}, true},
	{"1-of-3 8 KiB segments", 1, 2, 3, 8 << 10, []int{57, 8 << 10, 8<<10 + 1, 13*8<<10 + 7}, true},
	{"3-of-5 odd segment size", 3, 4, 5, 10007, []int{10007 * 9, 10007*13 + 5}, false},
}

// range7Client is a client of g with the given encoding and server
// timeout st (0: newClient's).
func range7Client(t *testing.T, g *testgrid.Grid, k, h, n, segSize int, st time.Duration) *grid.Client {
	c, _ := newClient(t, g, func(cfg *grid.Config) {
		cfg.K, cfg.H, cfg.N, cfg.SegmentSize = k, h, n, segSize
		if st > 0 {
			cfg.ServerTimeout = st
		}
	})
	return c
}

// TestRange7Bytes: random ranges of files of many sizes and encodings
// (one byte to a few groups, tails smaller than K, K=1, odd segment
// sizes) read by several goroutines at once from one File, with two
// sequential readers in small pieces (which read ahead) beside them,
// give exactly the plaintext, with io.ReaderAt's counts and errors.
func TestRange7Bytes(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, pc := range range7Params {
		t.Run(pc.name, func(t *testing.T) {
			g := testgrid.New(t, 5, nil)
			c := range7Client(t, g, pc.k, pc.h, pc.n, pc.segSize, 0)
			for _, size := range pc.sizes {
				t.Run(fmt.Sprint(size), func(t *testing.T) {
					data := pseudo(seed+uint64(size), size)
					cp := upload(t, c, data)
					f, err := c.Open(ctxFor(t, time.Minute), cp)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := range7Hammer(ctxFor(t, time.Minute), f, data, int64(pc.segSize), seed, range7Reads, nil); err != nil {
						t.Fatal(err)
					}
					grid.WaitRangeAhead(f)
				})
			}
		})
	}
}

// range7Hammer reads f: 4 goroutines each reading reads random ranges
// (pickRange), and 2 sequential readers of pieces of a quarter segment,
// 4 in flight, from 0 and from the middle. Each read is checked against
// data; the first failure is returned, with the slowest random read.
// after, if set, runs once a third of the random reads are done (to
// damage the grid meanwhile).
func range7Hammer(ctx context.Context, f *grid.File, data []byte, segSize int64, seed uint64, reads int, after func()) (*slowRead, error) {
	size := int64(len(data))
	slowest := &slowRead{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var once sync.Once
	var count atomic.Int32
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(seed, uint64(w)))
			for k := range reads {
				off, n := pickRange(r, size, segSize)
				t0 := time.Now()
				err := checkRange(ctx, f, data, off, n)
				slowest.note(time.Since(t0), off, n)
				if err != nil {
					errs <- fmt.Errorf("random reader %d, read %d: %w", w, k, err)
					return
				}
				if count.Add(1) == int32(4*reads/3) && after != nil {
					once.Do(after)
				}
			}
		}()
	}
	for _, from := range []int64{0, size / 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			piece := max(1, int(segSize/4))
			if err := rangeRead(ctxReader{f, ctx}, from, size, piece, 4, data); err != nil {
				errs <- fmt.Errorf("sequential reader from %d: %w", from, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return slowest, <-errs
}

// slowRead is the slowest read of a hammer.
type slowRead struct {
	mu  sync.Mutex
	d   time.Duration
	off int64
	n   int
}

func (s *slowRead) note(d time.Duration, off int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > s.d {
		s.d, s.off, s.n = d, off, n
	}
}

// TestRange7Damage: TestRange7Bytes' reads (4 random readers, 2 in
// order) of files whose shares on one or two servers have corrupt blocks
// (in the first segment, in groups read ahead, in the tail; never two in
// one segment) give the plaintext, and the corrupt shares are reported.
func TestRange7Damage(t *testing.T) {
	range7Damage(t, "corrupt one", "corrupt two")
}

// TestRange7ServerLost: the same reads while a server holding shares
// stops, or freezes, in the middle of them (after the File was opened)
// give the plaintext, none waiting much past the server timeout.
func TestRange7ServerLost(t *testing.T) {
	range7Damage(t, "stop one", "freeze one")
}

func range7Damage(t *testing.T, damages ...string) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	// The server timeout: short where a server freezes (each read that
	// meets it waits that long), long where none does (a read timing out
	// under load fails its share for the File: with two shares corrupt
	// that would leave K-1).
	st := func(dmg string) time.Duration {
		if dmg == "freeze one" {
			return 2 * time.Second
		}
		return time.Minute
	}
	for _, pc := range range7Params {
		if !pc.damage {
			continue
		}
		size := pc.sizes[len(pc.sizes)-1] // (13 segments)
		for _, dmg := range damages {
			if pc.k == 1 && dmg == "freeze one" {
				continue // (a server timeout or two per read that meets it: once is enough)
			}
			if pc.k == 1 && dmg == "corrupt two" {
				continue // (H=2: the 3 shares may lie on two servers, and a decoder that met both corrupt ones would have none left)
			}
			t.Run(pc.name+"/"+dmg, func(t *testing.T) {
				g := testgrid.New(t, 5, nil)
				c := range7Client(t, g, pc.k, pc.h, pc.n, pc.segSize, st(dmg))
				data := pseudo(seed+uint64(size), size)
				cp := chkOf(t, upload(t, c, data))
				l, err := chk.NewLayout(chk.Params{K: pc.k, N: pc.n, SegmentSize: pc.segSize}, int64(size))
				if err != nil {
					t.Fatal(err)
				}
				servers := range7Holders(g, cp)
				var after func()
				corrupt := 0
				switch dmg {
				case "corrupt one", "corrupt two":
					// Server a: the first segment, one in the second
					// group, the tail; server b: others (never the same
					// segment as a, so K good shares remain).
					corrupt = 1
					range7Corrupt(t, g, servers[0], cp, l, []int{0, aheadSeg(1), l.Segments - 1})
					if dmg == "corrupt two" {
						corrupt = 2
						range7Corrupt(t, g, servers[1], cp, l, []int{1, aheadSeg(2) + 1, l.Segments - 2})
					}
				case "stop one":
					after = g.Servers[servers[0]].Stop
				case "freeze one":
					s := g.Servers[servers[0]]
					after = s.Freeze
					t.Cleanup(s.Thaw)
				}
				// (Corrupted before the open: a share of one window is read
				// whole by the open.)
				f, err := c.Open(ctxFor(t, time.Minute), cp)
				if err != nil {
					t.Fatal(err)
				}
				ctx := ctxFor(t, time.Minute)
				start := time.Now()
				slowest, err := range7Hammer(ctx, f, data, int64(pc.segSize), seed, range7Reads, after)
				if err != nil {
					t.Fatalf("%v (problems: %v)", err, f.Problems())
				}
				grid.WaitRangeAhead(f)
				t.Logf("%s: %v, slowest read %v (%d at %d), problems %v", dmg, time.Since(start), slowest.d, slowest.n, slowest.off, f.Problems())
				// A frozen server costs a read a server timeout or two (a
				// read-ahead it waits for, then its own), not the context's
				// minute.
				if dmg == "freeze one" && slowest.d > 8*st(dmg) {
					t.Errorf("a read of %d bytes at %d took %v", slowest.n, slowest.off, slowest.d)
				}
				if corrupt > 0 {
					bad := map[int]bool{}
					for _, p := range f.Problems() {
						if errors.Is(p.Err, chk.ErrCorrupt) {
							bad[p.Share] = true
						}
					}
					if len(bad) == 0 {
						t.Errorf("no corrupt share reported: %v", f.Problems())
					}
				}
				// Again, after the damage is known: a whole read.
				if err := checkRange(ctx, f, data, 0, size); err != nil {
					t.Fatalf("whole read after: %v", err)
				}
			})
		}
	}
}

// aheadSeg is a segment in group g of read-ahead.
func aheadSeg(g int) int { return g * grid.AheadSegs }

// range7Holders lists the servers holding shares of cp, in the file's
// ring order (those read first first).
func range7Holders(g *testgrid.Grid, cp cap.CHK) []int {
	si := cp.StorageIndex()
	var out []int
	for _, i := range ringOrder(g, si) {
		if nums, _ := g.Servers[i].Backend.Shares(si); len(nums) > 0 {
			out = append(out, i)
		}
	}
	return out
}

// range7Corrupt flips a bit in block segs of every share server srv holds.
func range7Corrupt(t *testing.T, g *testgrid.Grid, srv int, cp cap.CHK, l chk.Layout, segs []int) {
	t.Helper()
	si := cp.StorageIndex()
	nums, _ := g.Servers[srv].Backend.Shares(si)
	for _, sh := range nums {
		for _, s := range segs {
			blk, _ := l.Block(s)
			if err := g.Servers[srv].Backend.Corrupt(storage.Ref{Index: si, Num: sh}, blk, 0x40); err != nil {
				t.Fatal(err)
			}
		}
	}
}
