package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunFilesBoundsBigFiles: runFiles keeps up to jobs files in flight,
// but never more than bigJobs of those over bigFile bytes (or of unknown
// size), and the first error stops the rest.
func TestRunFilesBoundsBigFiles(t *testing.T) {
	for _, tc := range []struct {
		name              string
		jobs              int
		sizes             []int64
		wantAll, wantBig  int // the most in flight at once (wantAll 0: up to jobs)
		failAt, wantCalls int // a job that fails (-1 none), and how many run
	}{
		{"small files fill every job", 16, repeat(4096, 64), 16, 0, -1, 64},
		{"big files at most bigJobs", 16, repeat(8<<20, 32), bigJobs, bigJobs, -1, 32},
		{"unknown sizes count as big", 8, repeat(-1, 20), bigJobs, bigJobs, -1, 20},
		{"mixed", 16, append(repeat(8<<20, 8), repeat(100, 40)...), 0, bigJobs, -1, 48}, // 0: any number up to jobs
		{"one job", 1, repeat(8<<20, 5), 1, 1, -1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var all, big, maxAll, maxBig, calls atomic.Int64
			var mu sync.Mutex
			note := func(v *atomic.Int64, n int64) {
				mu.Lock()
				if n > v.Load() {
					v.Store(n)
				}
				mu.Unlock()
			}
			cp := &copier{ctx: context.Background(), jobs: tc.jobs}
			for _, sz := range tc.sizes {
				isBig := sz < 0 || sz > bigFile
				cp.files = append(cp.files, fileJob{size: sz, run: func() error {
					calls.Add(1)
					note(&maxAll, all.Add(1))
					if isBig {
						note(&maxBig, big.Add(1))
					}
					time.Sleep(5 * time.Millisecond)
					if isBig {
						big.Add(-1)
					}
					all.Add(-1)
					return nil
				}})
			}
			if err := cp.runFiles(); err != nil {
				t.Fatal(err)
			}
			wantAll := tc.wantAll
			if wantAll == 0 && maxAll.Load() <= int64(tc.jobs) {
				wantAll = int(maxAll.Load())
			}
			if int(maxAll.Load()) != wantAll || int(maxBig.Load()) != tc.wantBig || int(calls.Load()) != tc.wantCalls {
				t.Fatalf("at most %d in flight (%d big), %d run; want %d (%d big), %d", maxAll.Load(), maxBig.Load(), calls.Load(), wantAll, tc.wantBig, tc.wantCalls)
			}
		})
	}
	t.Run("first error stops the rest", func(t *testing.T) {
		boom := errors.New("boom")
		var calls atomic.Int64
		cp := &copier{ctx: context.Background(), jobs: 2}
		for i := range 50 {
			cp.files = append(cp.files, fileJob{size: 8 << 20, run: func() error {
				calls.Add(1)
				time.Sleep(time.Millisecond)
				if i == 3 {
					return boom
				}
				return nil
			}})
		}
		if err := cp.runFiles(); !errors.Is(err, boom) {
			t.Fatalf("runFiles: %v", err)
		}
		if n := calls.Load(); n >= 50 {
			t.Fatalf("all %d files ran after an error", n)
		}
	})
}

func repeat(size int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = size
	}
	return out
}
