package sftp

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// TestFarReadDoesNotMoveStream: a read more than readReach blocks past a
// handle's read-ahead stream is served by a grid read and leaves the
// stream where the reader in order needs it. Before, a media player
// reading an MP4's header at 0, then its index at block 190, had the
// stream fetch 195 blocks and hold 194 MiB (meant: at most 29 MiB); here
// at block 90 of 100 (before: 95 fetched, 90 held).
// After every read the stream is let run until it parks; it may hold at
// most readReach+readWindow+1 blocks and have fetched at most one block
// past the last it published, and every read's bytes are the file's.
func TestFarReadDoesNotMoveStream(t *testing.T) {
	const blocks = 100
	data := pseudo(83, blocks*readBlock)
	seq := func(from, to int64) []int64 {
		var s []int64
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	cases := []struct {
		name    string
		reads   []int64 // block of each 32 KiB read, in order
		maxWant int64   // the stream's limit after the reads
	}{
		{"header then index at the end", []int64{0, 90}, 0},
		{"index at the end then on from the start", append([]int64{0, 90, 91}, seq(1, 40)...), 39},
		{"within reach then far", []int64{0, 20, 60, 61}, 20},
		{"last block", []int64{0, blocks - 1}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &countingFile{data: data}
			h := newReadHandle(context.Background(), f, "/movie.mp4")
			t.Cleanup(func() { h.Close() })
			for i, b := range tc.reads {
				off := b * readBlock
				if i > 0 {
					off += 4096 // past the block's start
				}
				p := make([]byte, 32<<10)
				n, err := h.ReadAt(p, off)
				if err != nil && err != io.EOF {
					t.Fatalf("read %d at block %d: %v", i, b, err)
				}
				want := f.data[off:min(int64(len(f.data)), off+int64(len(p)))]
				if !bytes.Equal(p[:n], want) {
					t.Fatalf("read %d at block %d: wrong bytes", i, b)
				}
				next, held, maxWant := parked(t, h)
				if held > readReach+readWindow+1 {
					t.Errorf("after read %d (block %d): %d blocks held, want at most %d", i, b, held, readReach+readWindow+1)
				}
				if got := f.streamed.Load(); got > (next+1)*readBlock {
					t.Errorf("after read %d (block %d): stream fetched %d bytes, published %d blocks", i, b, got, next)
				}
				if i == len(tc.reads)-1 && maxWant != tc.maxWant {
					t.Errorf("stream's limit at block %d, want %d", maxWant, tc.maxWant)
				}
			}
			if max := (tc.maxWant + readWindow + 2) * readBlock; f.streamed.Load() > max {
				t.Errorf("stream fetched %d bytes, want at most %d", f.streamed.Load(), max)
			}
		})
	}
}

// parked waits for h's stream to stop at readWindow blocks past the
// furthest block asked for (or at the end of the file) and returns the
// block it publishes next, the blocks held and that furthest block.
func parked(t *testing.T, h *readHandle) (next int64, held int, maxWant int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		next, held, maxWant = h.next, len(h.blocks), h.maxWant
		done := !h.streaming || next == maxWant+readWindow+1
		h.mu.Unlock()
		if done {
			return next, held, maxWant
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream did not park: at block %d, reader at %d", next, maxWant)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
