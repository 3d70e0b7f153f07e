package grid_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/testgrid"
)

// TestRange7CancelledReadLeavesFileReadable: a range read whose own
// context ends while its blocks are being fetched fails with that
// context's error, and leaves the File as readable as before: later reads
// with live contexts (of the same segment, of others) give the file's
// bytes.
func TestRange7CancelledReadLeavesFileReadable(t *testing.T) {
	const segs = 12
	size := segs*seg - 321
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, nil)
	data := random(size)
	cp := upload(t, c, data)
	for _, tc := range []struct {
		name    string
		cancels int // reads cancelled one after the other
		piece   int
	}{
		{"one piece read cancelled", 1, 4 << 10},
		{"a whole segment read cancelled", 1, seg},
		{"three reads cancelled", 3, 4 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := c.Open(ctxFor(t, time.Minute), cp)
			if err != nil {
				t.Fatal(err)
			}
			for k := range tc.cancels {
				for _, s := range g.Servers {
					s.Freeze()
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				off := int64(2+3*k) * seg
				go func() {
					_, err := f.ReadAtContext(ctx, make([]byte, tc.piece), off)
					done <- err
				}()
				time.Sleep(150 * time.Millisecond)
				cancel()
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("read with a cancelled context: no error")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("read with a cancelled context did not return")
				}
				for _, s := range g.Servers {
					s.Thaw()
				}
			}
			grid.WaitRangeAhead(f)
			if n := grid.RangeRetired(f); n < 1 {
				t.Errorf("%d decoders dropped after %d cancelled reads, want some", n, tc.cancels)
			}
			for _, s := range []int{2, 0, segs - 1, 5} {
				off := int64(s) * seg
				buf := make([]byte, min(int64(tc.piece), int64(size)-off))
				n, err := f.ReadAtContext(ctxFor(t, time.Minute), buf, off)
				if n != len(buf) || !bytes.Equal(buf, data[off:off+int64(n)]) {
					t.Fatalf("read of segment %d after a cancelled read: %d of %d bytes: %v", s, n, len(buf), err)
				}
			}
			// (f.Problems lists the shares the cancelled reads were
			// reading: chk.Decoder reports a read its context ended.)
			t.Logf("problems: %v", f.Problems())
		})
	}
}

// TestRange7FileContextEndsMidGroup: the File's own context (Open's, under
// which segments are read ahead) ends while segments are being fetched
// ahead of a reader (every server frozen, so that the fetches are still
// out): the read-ahead ends (no goroutine left), the reader's own read,
// under a context of its own, gets its bytes once the servers answer, and
// so do reads of the whole file after, whatever the read-ahead's decoders
// went through.
func TestRange7FileContextEndsMidGroup(t *testing.T) {
	const segs = 16
	size := segs*seg - 99
	g := testgrid.New(t, 5, nil)
	c, _ := newClient(t, g, func(cfg *grid.Config) { cfg.ServerTimeout = time.Minute })
	data := random(size)
	cp := upload(t, c, data)
	octx, cancelOpen := context.WithCancel(context.Background())
	defer cancelOpen()
	f, err := c.Open(octx, cp)
	if err != nil {
		t.Fatal(err)
	}
	rctx := ctxFor(t, time.Minute)
	if err := checkRange(rctx, f, data, 0, 4<<10); err != nil {
		t.Fatal(err)
	}
	for _, s := range g.Servers {
		s.Freeze()
		t.Cleanup(s.Thaw)
	}
	done := make(chan error, 1)
	go func() {
		// Moving on to segment 1 starts the read-ahead of 2 to 7.
		done <- checkRange(rctx, f, data, seg, 4<<10)
	}()
	time.Sleep(300 * time.Millisecond)
	cancelOpen()
	time.Sleep(100 * time.Millisecond)
	for _, s := range g.Servers {
		s.Thaw()
	}
	if err := <-done; err != nil {
		t.Fatalf("read of segment 1: %v", err)
	}
	grid.WaitRangeAhead(f)
	for _, piece := range []int{seg / 4, seg} {
		if err := rangeRead(ctxReader{f, rctx}, 0, int64(size), piece, 1, data); err != nil {
			t.Fatalf("read after the File's context ended, %d-byte pieces: %v", piece, err)
		}
	}
	grid.WaitRangeAhead(f)
}
