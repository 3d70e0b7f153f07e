package gopool

import (
	"sync"
	"testing"
	"time"
)

// TestPool: every function runs; functions blocked on workers do not
// hold up a new one (it gets a worker or a goroutine of its own, also
// past the bound); a worker that finished takes the next function; idle
// workers end.
func TestPool(t *testing.T) {
	const max, idle = 8, 200 * time.Millisecond
	p := New(max, idle)
	for _, blocked := range []int{0, 3, max + 2} {
		release := make(chan struct{})
		var started, ended sync.WaitGroup
		for range blocked {
			started.Add(1)
			ended.Add(1)
			p.Go(func() { started.Done(); <-release; ended.Done() })
		}
		started.Wait()
		done := make(chan struct{})
		p.Go(func() { close(done) })
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("a function waited behind %d busy ones", blocked)
		}
		close(release)
		ended.Wait()
		if n := p.Workers(); n > max {
			t.Fatalf("%d workers, bound %d", n, max)
		}
	}
	time.Sleep(10 * time.Millisecond)
	before := p.Workers()
	if before == 0 {
		t.Fatal("no idle worker after the functions")
	}
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	if n := p.Workers(); n != before {
		t.Fatalf("%d workers after a function with %d idle: a new one started", n, before)
	}
	deadline := time.Now().Add(idle + 5*time.Second)
	for p.Workers() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still there after %v idle", p.Workers(), idle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
