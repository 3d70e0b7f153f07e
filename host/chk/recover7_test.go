package chk

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// outageSource serves shares from m, except that reads of a share that is
// down fail as a dropped connection would; it counts every read of each
// share.
type outageSource struct {
	m     *MemShares
	mu    sync.Mutex
	down  map[int]bool
	reads map[int]int
}

func (o *outageSource) ReadAt(ctx context.Context, sh int, p []byte, off int64) (int, error) {
	o.mu.Lock()
	o.reads[sh]++
	down := o.down[sh]
	o.mu.Unlock()
	if down {
		return 0, errors.New("connection reset by peer")
	}
	return o.m.ReadAt(ctx, sh, p, off)
}

func (o *outageSource) set(down ...int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = map[int]bool{}
	for _, sh := range down {
		o.down[sh] = true
	}
}

func (o *outageSource) readsOf(sh int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reads[sh]
}

// TestRecover7RetryAfter: with Options.RetryAfter, a decoder whose shares'
// reads failed (too many to decode) reads again once its back-off is over
// and the shares are back; it does not touch them during the back-off; a
// share found corrupt is never read again; without RetryAfter a failed
// share stays bad (as before).
func TestRecover7RetryAfter(t *testing.T) {
	const retry = time.Second
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	data := content(6*4096+100, 7)
	l := mustLayout(t, p, int64(len(data)))
	for _, tc := range []struct {
		name    string
		retry   time.Duration
		corrupt bool // share 0's blocks are corrupt
		after   []int
		ok      bool // the read after the back-off gives the bytes
	}{
		{"shares back", retry, false, nil, true},
		{"corrupt share stays bad", retry, true, nil, true},
		{"corrupt share not retried though needed", retry, true, []int{3, 4}, false},
		{"no RetryAfter: failed for good", 0, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, m := encode(t, p, testKey(3), data)
			if tc.corrupt {
				for i := range l.Segments {
					off, _ := l.Block(i)
					m.Shares[0][off] ^= 0x40
				}
			}
			src := &outageSource{m: m, reads: map[int]int{}}
			d, err := NewDecoder(context.Background(), c, rs, src, &Options{RetryAfter: tc.retry})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			if _, err := d.ReadAt(buf, 0); err != nil && !tc.corrupt {
				t.Fatalf("first read: %v", err)
			}
			// Shares 1 and 2 go down (and 0 is corrupt or read): the
			// next segment fails in the corrupt case, and in every case
			// once 3 and 4 go down too.
			src.set(1, 2, 3, 4)
			if _, err := d.ReadAt(buf, 4096); !errors.Is(err, ErrNotEnoughShares) {
				t.Fatalf("read with 4 shares down: %v, want not enough shares", err)
			}
			src.set(tc.after...)
			before := [5]int{}
			for sh := range before {
				before[sh] = src.readsOf(sh)
			}
			if tc.retry > 0 {
				if _, err := d.ReadAt(buf, 2*4096); !errors.Is(err, ErrNotEnoughShares) {
					t.Fatalf("read during the back-off: %v, want not enough shares", err)
				}
				for sh := 1; sh <= 4; sh++ {
					if n := src.readsOf(sh) - before[sh]; n != 0 {
						t.Errorf("share %d read %d times during its back-off", sh, n)
					}
				}
				time.Sleep(tc.retry + 50*time.Millisecond)
			}
			got := make([]byte, len(data)-3*4096)
			n, err := d.ReadAt(got, 3*4096)
			if tc.ok {
				if err != nil || n != len(got) || !bytes.Equal(got, data[3*4096:]) {
					t.Fatalf("read after the back-off: %d of %d bytes, right %v: %v", n, len(got), bytes.Equal(got[:n], data[3*4096:3*4096+n]), err)
				}
			} else if !errors.Is(err, ErrNotEnoughShares) {
				t.Fatalf("read after the back-off: %v, want not enough shares", err)
			}
			if tc.corrupt {
				if n := src.readsOf(0) - before[0]; n != 0 {
					t.Errorf("corrupt share 0 read %d times after it was found corrupt", n)
				}
				corrupt := 0
				for _, p := range d.Problems() {
					if p.Share == 0 && errors.Is(p, ErrCorrupt) {
						corrupt++
					}
				}
				if corrupt != 1 {
					t.Errorf("share 0 reported corrupt %d times, want once: %v", corrupt, d.Problems())
				}
			}
		})
	}
}
