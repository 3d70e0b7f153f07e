package introducer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpaceWatchRefusalHeldBackByMinGap: a refusal for lack of space within
// MinGap of the last announcement the watch asked for "waits for the gap's
// end" (Refused's doc): at the gap's end the figure, still different from
// the one announced, must be announced. The held-back check ran without
// the refusal flag, so a change below the material step was dropped.
func TestSpaceWatchRefusalHeldBackByMinGap(t *testing.T) {
	var free atomic.Uint64
	free.Store(1000 << 20)
	var kicks atomic.Int64
	w := NewSpaceWatch(SpaceWatchConfig{
		Free:   func(context.Context) (uint64, error) { return free.Load(), nil },
		Kick:   func() { kicks.Add(1) },
		Every:  time.Hour,
		MinGap: 300 * time.Millisecond,
	})
	announce := w.FreeSpace(context.Background(), nil) // what a publisher calls
	announce()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitKicks := func(want int64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for kicks.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d announcements asked for, want %d (announced figure %d MiB, free now %d MiB)",
					kicks.Load(), want, w.announced>>20, free.Load()>>20)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	free.Store(970 << 20) // 30 MiB less: not material
	w.Refused()
	waitKicks(1, time.Second)
	announce() // the publisher announces 970 MiB
	free.Store(940 << 20)
	w.Refused() // within MinGap: held back
	waitKicks(2, 2*time.Second)
}
