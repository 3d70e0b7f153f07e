package grid

import (
	"sync"
	"testing"
	"time"
)

// TestCallPool: every call runs; calls blocked on workers do not hold up
// a new call (it gets a worker or a goroutine of its own, also past
// callPoolMax); a worker that finished takes the next call; idle
// workers end.
func TestCallPool(t *testing.T) {
	p := &callPool{work: make(chan func())}
	cases := []struct {
		name    string
		blocked int // calls held running while one more is made
	}{
		{"none busy", 0},
		{"some busy", 3},
		{"past the bound", callPoolMax + 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var started, ended sync.WaitGroup
			for range tc.blocked {
				started.Add(1)
				ended.Add(1)
				p.run(func() { started.Done(); <-release; ended.Done() })
			}
			started.Wait()
			done := make(chan struct{})
			p.run(func() { close(done) })
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("a call waited behind %d busy ones", tc.blocked)
			}
			close(release)
			ended.Wait()
			if n := p.workers.Load(); n > callPoolMax {
				t.Fatalf("%d workers, bound %d", n, callPoolMax)
			}
		})
	}
	// A worker idle from a call before takes the next one.
	time.Sleep(10 * time.Millisecond)
	before := p.workers.Load()
	if before == 0 {
		t.Fatal("no idle worker after the calls")
	}
	done := make(chan struct{})
	p.run(func() { close(done) })
	<-done
	if n := p.workers.Load(); n != before {
		t.Fatalf("%d workers after a call with %d idle: a new one started", n, before)
	}
	deadline := time.Now().Add(callPoolIdle + 5*time.Second)
	for p.workers.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still there after %v idle", p.workers.Load(), callPoolIdle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
