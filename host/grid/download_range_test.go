package grid_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/chk"
	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/sdk/storage"
)

// rangeRead reads [from, to) of f the way an SFTP server answers one
// client stream (rclone's multi-thread get, a download manager): pieces
// of piece bytes asked for in order, at most inflight asked and not yet
// answered (the client's window), answered by as many goroutines at once,
// so that pieces of the next segment are read while the last ones of
// this segment are still being read. It checks the bytes against want.
func rangeRead(f interface {
	ReadAt([]byte, int64) (int, error)
}, from, to int64, piece, inflight int, want []byte) error {
	var offs []int64
	for off := from; off < to; off += int64(piece) {
		offs = append(offs, off)
	}
	done := make([]chan error, len(offs))
	for k := range done {
		done[k] = make(chan error, 1)
	}
	read := func(k int) {
		off := offs[k]
		n := int(min(int64(piece), to-off))
		buf := make([]byte, n)
		got, err := f.ReadAt(buf, off)
		switch {
		case got != n:
			err = fmt.Errorf("read %d bytes at %d: got %d: %v", n, off, got, err)
		case !bytes.Equal(buf, want[off:off+int64(n)]):
			err = fmt.Errorf("read %d bytes at %d: bytes differ", n, off)
		default:
			err = nil
		}
		done[k] <- err
	}
	for k := range offs {
		if k >= inflight {
			// The window is full: wait for the oldest answer.
			if err := <-done[k-inflight]; err != nil {
				return err
			}
		}
		go read(k)
	}
	for k := max(0, len(offs)-inflight); k < len(offs); k++ {
		if err := <-done[k]; err != nil {
			return err
		}
	}
	return nil
}

// TestRangeReaders: four readers of one file, each reading its quarter
// sequentially in small pieces with several pieces in flight (as rclone's
// 4-stream SFTP get does, each stream with a handle, so a File, of its
// own), fetch about the file's K shares' bytes from the servers once,
// not again for segments a reader had decoded and moved past, and in
// windows of several segments per backend read, not one per block; so
// does one such reader of the whole file and one reading in one goroutine.
func TestRangeReaders(t *testing.T) {
	const segs = 64
	size := segs*seg - 777
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(size)
	cp := chkOf(t, upload(t, c, data))
	l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(size))
	if err != nil {
		t.Fatal(err)
	}
	// What K shares hold: their blocks (and trees).
	const metaWindow = 32 << 10
	blockBytes := 3 * (l.ShareSize - l.BlocksOffset)
	for _, tc := range []struct {
		name     string
		readers  int
		piece    int
		inflight int
	}{
		{"4 readers, 8 pieces a segment, 8 in flight", 4, seg / 8, 8},
		{"4 readers, 4 KiB pieces, 16 in flight", 4, 4 << 10, 16},
		{"1 reader, 8 pieces a segment, 8 in flight", 1, seg / 8, 8},
		{"1 reader, one piece at a time", 1, seg / 8, 1},
		{"1 reader, whole segments", 1, seg, 1},
		{"2 readers, two segments a piece, 2 in flight", 2, 2 * seg, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.Counts()
			var wg sync.WaitGroup
			errs := make(chan error, tc.readers)
			var files []*grid.File
			for r := range tc.readers {
				from := int64(size) * int64(r) / int64(tc.readers)
				to := int64(size) * int64(r+1) / int64(tc.readers)
				f, err := c.Open(ctxFor(t, time.Minute), cp)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := rangeRead(f, from, to, tc.piece, tc.inflight, data); err != nil {
						errs <- fmt.Errorf("reader %d of [%d, %d): %w", r, from, to, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, f := range files {
				if n := grid.WaitRangeAhead(f); n > 2*grid.AheadSegs+2 {
					t.Errorf("%d decoded segments kept", n)
				}
			}
			got := g.Counts()
			read, reads := got.BytesRead-before.BytesRead, got.Reads-before.Reads
			t.Logf("%d readers: %d backend reads, %d bytes read = %.2f of K shares' blocks", tc.readers, reads, read, float64(read)/float64(blockBytes))
			// Each reader (a File) reads the trees of its K shares, and
			// may decode a group of segments past its range's end and a
			// segment its neighbour decodes too. (Before: 2.4x the
			// blocks for 4 readers, 2.2x for 1 reader with 8 in flight.)
			slack := int64(tc.readers) * 3 * (metaWindow + int64(grid.AheadSegs+2)*int64(l.BlockSize))
			if read < blockBytes || read > blockBytes+slack {
				t.Errorf("%d bytes read from the servers, want %d (K shares' blocks) to %d (+ per reader: trees, a read-ahead group and a segment)",
					read, blockBytes, blockBytes+slack)
			}
			// Per reader: K tree windows, up to two groups of segments
			// and the segments its first pieces in flight span decoded
			// block by block before its cursor is seen moving on (reads
			// of several segments in flight arrive out of order), and a
			// group past its end. One read per block would be 3 x 64 =
			// 192 and more (before: 430 to 470 with 8 or 16 in flight).
			span := tc.inflight * tc.piece / seg
			if maxReads := int64(3*segs/grid.AheadSegs + tc.readers*3*(2+2*grid.AheadSegs+span)); reads > maxReads {
				t.Errorf("%d backend reads, want at most %d", reads, maxReads)
			}
		})
	}
}

// TestRangeReadersDamage: range reads through the read-ahead still give
// the file's bytes, and report the share, when a block in a group read
// ahead is corrupt or a share went away after Open; and a File whose
// Open context ended still reads with a context of its own (no read-ahead
// then).
func TestRangeReadersDamage(t *testing.T) {
	const segs = 24
	size := segs*seg - 1000
	for _, tc := range []struct {
		name     string
		damage   string // "corrupt", "missing", "ctx"
		problems bool
	}{
		{"corrupt block in a group read ahead", "corrupt", true},
		{"share deleted after open", "missing", false},
		{"open context ended", "ctx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			octx, cancel := context.WithCancel(ctxFor(t, time.Minute))
			defer cancel()
			_, data, f := openDamaged(t, octx, size, tc.damage, 9) // (in the third group)
			var r interface {
				ReadAt([]byte, int64) (int, error)
			} = f
			if tc.damage == "ctx" {
				cancel()
				r = ctxReader{f, ctxFor(t, time.Minute)}
			}
			if err := rangeRead(r, 0, int64(size), seg/8, 8, data); err != nil {
				t.Fatal(err)
			}
			grid.WaitRangeAhead(f)
			// (A share gone is a problem when the decoder tried it, which
			// depends on which servers answered Open first.)
			if got := len(f.Problems()) > 0; tc.damage != "missing" && got != tc.problems {
				t.Fatalf("problems %v, want some: %v", f.Problems(), tc.problems)
			}
			// Again, now that the damaged share is known.
			if err := rangeRead(r, int64(size)/3, int64(size), 4<<10, 4, data); err != nil {
				t.Fatalf("second read: %v", err)
			}
			grid.WaitRangeAhead(f)
		})
	}
}

// ctxReader reads f with its own context.
type ctxReader struct {
	f   *grid.File
	ctx context.Context
}

func (r ctxReader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAtContext(r.ctx, p, off) }

// openDamaged uploads size random bytes to a fresh 5-server grid, opens
// the file under ctx, and then damages the shares the first server of its
// ring holds (whose shares are read first): damage "corrupt" flips a bit
// in block segment, "missing" deletes them, anything else leaves them.
func openDamaged(t *testing.T, ctx context.Context, size int, damage string, segment int) (*testgrid.Grid, []byte, *grid.File) {
	t.Helper()
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(size)
	cp := chkOf(t, upload(t, c, data))
	si := cp.StorageIndex()
	l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(size))
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	first := ringOrder(g, si)[0]
	nums, _ := g.Servers[first].Backend.Shares(si)
	for _, sh := range nums {
		ref := storage.Ref{Index: si, Num: sh}
		switch damage {
		case "corrupt":
			blk, _ := l.Block(segment)
			if err := g.Servers[first].Backend.Corrupt(ref, blk+11, 0x10); err != nil {
				t.Fatal(err)
			}
		case "missing":
			if err := g.Servers[first].Backend.DeleteShare(ref); err != nil {
				t.Fatal(err)
			}
		}
	}
	return g, data, f
}

// TestRangeReadsScattered: reads here and there are not read ahead: each
// fetches the blocks of the segment it touches, once while it is kept,
// and the File keeps at most two decoded segments.
func TestRangeReadsScattered(t *testing.T) {
	const segs = 40
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(segs*seg - 100)
	cp := chkOf(t, upload(t, c, data))
	l, err := chk.NewLayout(chk.Params{K: 3, N: 5, SegmentSize: seg}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		at      []int // segments read, 4 KiB each
		fetched int   // segments whose blocks are fetched
	}{
		{"scattered", []int{0, 10, 20, 5, 15, 30, 25}, 7},
		{"one segment again", []int{7, 7, 7}, 1},
		{"back and forth between two", []int{3, 9, 3, 9}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			before := g.Counts().BytesRead
			for _, s := range tc.at {
				off := int64(s)*seg + 1000
				buf := make([]byte, 4<<10)
				if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
					t.Fatalf("read at segment %d: %v (or bytes differ)", s, err)
				}
			}
			if n := grid.WaitRangeAhead(f); n > 2 {
				t.Errorf("%d decoded segments kept, want at most 2", n)
			}
			// K blocks per segment, and the trees (at most a 32 KiB
			// window per share).
			read := g.Counts().BytesRead - before
			want := int64(tc.fetched) * 3 * int64(l.BlockSize)
			if read < want || read > want+3*32<<10 {
				t.Errorf("%d bytes read from the servers, want %d and the trees", read, want)
			}
		})
	}
}

// blockedWriter holds WriteTo at its first write until release is closed.
type blockedWriter struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	return len(p), nil
}

// TestRangeReadsDuringWriteTo: while a WriteTo of the File runs (an SFTP
// handle's stream, which fetches every segment), its range reads read
// nothing ahead: a range read in the middle of the file leaves no segment
// decoded past its end.
func TestRangeReadsDuringWriteTo(t *testing.T) {
	const segs = 32
	size := segs * seg
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(size)
	cp := upload(t, c, data)
	for _, tc := range []struct {
		name    string
		writing bool
		kept    int // decoded segments kept past the range
	}{
		{"alone", false, grid.AheadSegs},
		{"during a WriteTo", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			w := &blockedWriter{started: make(chan struct{}), release: make(chan struct{})}
			done := make(chan error, 1)
			if tc.writing {
				go func() {
					_, err := f.WriteTo(w)
					done <- err
				}()
				<-w.started
			}
			// Segments 8 to 15, aligned: a group ahead of segment 12 is
			// 16 to 19.
			if err := rangeRead(f, 8*seg, 16*seg, seg/8, 8, data); err != nil {
				t.Fatal(err)
			}
			if n := grid.WaitRangeAhead(f); n != tc.kept {
				t.Errorf("%d decoded segments kept after the range read, want %d", n, tc.kept)
			}
			if tc.writing {
				close(w.release)
				if err := <-done; err != nil {
					t.Fatalf("WriteTo: %v", err)
				}
			}
		})
	}
}
