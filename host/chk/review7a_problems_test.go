package chk

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReview7aRetriedProblemsBounded: a decoder with RetryAfter whose
// shares stay down retries them after every back-off; each retry that
// fails is told to OnProblem, but Problems lists each share's failure
// once, not once per retry (a long-lived File's decoder would grow it
// without bound).
func TestReview7aRetriedProblemsBounded(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	data := content(4*4096, 9)
	c, m := encode(t, p, testKey(3), data)
	src := &outageSource{m: m, reads: map[int]int{}}
	src.set(1, 2, 3, 4)
	told := 0
	d, err := NewDecoder(context.Background(), c, rs, src, &Options{RetryAfter: time.Millisecond, OnProblem: func(Problem) { told++ }})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	const reads = 20
	for range reads {
		if _, err := d.ReadAt(buf, 4096); !errors.Is(err, ErrNotEnoughShares) {
			t.Fatalf("read with 4 shares down: %v, want not enough shares", err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	if told < 2*4 {
		t.Fatalf("OnProblem told %d times over %d reads: the shares were not retried", told, reads)
	}
	if n := len(d.Problems()); n > 4 {
		t.Fatalf("Problems lists %d problems of 4 shares down: %v", n, d.Problems())
	}
}
