package chk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/hashtree"
)

// TestManySegments runs a tree too big to read whole (node-by-node uncles,
// with the bounded node cache resetting) through sequential and random reads.
func TestManySegments(t *testing.T) {
	p := Params{K: 2, N: 4, SegmentSize: 64}
	data := content(20000*64+5, 11)
	c, m := encode(t, p, testKey(7), data)
	if l := mustLayout(t, p, int64(len(data))); hashtree.NodeCount(l.Segments) <= hashtree.MaxLearn {
		t.Fatalf("tree of %d nodes is small enough to read whole", hashtree.NodeCount(l.Segments))
	}
	got, d, err := decodeAll(t, c, m, nil)
	if err != nil || !bytes.Equal(got, data) || len(d.Problems()) != 0 {
		t.Fatalf("decode: %v %v", err, d.Problems())
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		off := r.Int64N(int64(len(data)))
		buf := make([]byte, r.IntN(300))
		n, _ := d.ReadAt(buf, off)
		if !bytes.Equal(buf[:n], data[off:min(off+int64(len(buf)), int64(len(data)))]) {
			t.Fatalf("range read at %d differs", off)
		}
	}
	// a flipped leaf deep in the big tree is caught node by node
	l := mustLayout(t, p, int64(len(data)))
	m.Shares[0][l.BlockTreeOffset+int64(hashtree.LeafIndex(l.Segments, 12345))*32] ^= 1
	got, d, err = decodeAll(t, c, m, nil)
	if err != nil || !bytes.Equal(got, data) || len(d.Problems()) != 1 || d.Problems()[0].Share != 0 {
		t.Fatalf("decode with a bad deep node: %v %v", err, d.Problems())
	}
}

// TestStreamingMemory: encoding and decoding 48 MiB allocate about a few
// segments, not the file.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("48 MiB")
	}
	if raceEnabled {
		// Runs without -race in make test; the detector's shadow
		// allocations make the figure meaningless.
		t.Skip("allocation figures are meaningless under the race detector")
	}
	p := DefaultParams
	const size = 48 << 20
	seg := content(p.SegmentSize, 12)
	ctx := context.Background()
	ssize, _ := ShareSize(p, size)
	dir := t.TempDir()
	files := make([]*os.File, p.N)
	ws, rs2 := make(WriterAts, p.N), make(ReaderAts, p.N)
	for i := range files {
		f, err := os.Create(filepath.Join(dir, "share"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files[i], ws[i], rs2[i] = f, f, f
	}
	alloc := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.TotalAlloc
	}
	before := alloc()
	e, err := NewEncoder(ctx, p, testKey(3), size, rs, ws)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size/p.SegmentSize; i++ {
		seg[0] = byte(i)
		if _, err := e.Write(seg); err != nil {
			t.Fatal(err)
		}
	}
	c, err := e.Close()
	if err != nil {
		t.Fatal(err)
	}
	if a := alloc() - before; a > 12<<20 {
		t.Fatalf("encoding 48 MiB allocated %d MiB", a>>20)
	}
	if fi, _ := files[3].Stat(); fi.Size() != ssize {
		t.Fatalf("share file is %d bytes, want %d", fi.Size(), ssize)
	}
	before = alloc()
	d, err := NewDecoder(ctx, c, rs, rs2, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &checker{seg: seg}
	if n, err := d.WriteTo(h); err != nil || n != size || h.bad {
		t.Fatalf("decode: %d bytes, %v, mismatch %v", n, err, h.bad)
	}
	if a := alloc() - before; a > 16<<20 {
		t.Fatalf("decoding 48 MiB allocated %d MiB", a>>20)
	}
}

// checker compares the stream with the segments TestStreamingMemory wrote.
type checker struct {
	seg []byte
	pos int64
	bad bool
}

func (c *checker) Write(p []byte) (int, error) {
	for i, b := range p {
		o := c.pos + int64(i)
		want := c.seg[o%int64(len(c.seg))]
		if o%int64(len(c.seg)) == 0 {
			want = byte(o / int64(len(c.seg)))
		}
		if b != want {
			c.bad = true
			return 0, io.ErrShortWrite
		}
	}
	c.pos += int64(len(p))
	return len(p), nil
}

// hangingSource blocks reads of one share until ctx ends, like a frozen
// server behind a transport that honours ctx.
type hangingSource struct {
	src  ShareSource
	hang int
	from int64 // reads at or past this offset hang
}

func (h hangingSource) ReadAt(ctx context.Context, s int, p []byte, off int64) (int, error) {
	if s == h.hang && off >= h.from {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return h.src.ReadAt(ctx, s, p, off)
}

func TestHungShareTimesOut(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	data := content(3*4096, 13)
	c, m := encode(t, p, testKey(6), data)
	// hang from the start, after the extension block, and from segment 1's block
	for _, from := range []int64{0, HeaderSize + UEBSize, mustLayout(t, p, int64(len(data))).BlocksOffset + 1366} {
		t.Run(fmt.Sprint("from ", from), func(t *testing.T) {
			start := time.Now()
			got, d, err := decodeAll(t, c, hangingSource{src: m, hang: 0, from: from}, &Options{ReadTimeout: 100 * time.Millisecond})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("decode: %v", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("took %v", el)
			}
			pr := d.Problems()
			if len(pr) != 1 || pr[0].Share != 0 || !errors.Is(pr[0].Err, context.DeadlineExceeded) {
				t.Fatalf("problems %v, want share 0 timed out", pr)
			}
		})
	}
}
