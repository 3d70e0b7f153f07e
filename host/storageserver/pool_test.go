package storageserver

import (
	"sync"
	"testing"
	"time"
)

// TestWorkerPool: every function runs; functions blocked on workers do
// not hold up a new one (it gets a worker or a goroutine of its own,
// also past workerMax); a worker that finished takes the next function;
// idle workers end.
func TestWorkerPool(t *testing.T) {
	p := &workerPool{work: make(chan func())}
	for _, blocked := range []int{0, 3, workerMax + 2} {
		release := make(chan struct{})
		var started, ended sync.WaitGroup
		for range blocked {
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
			t.Fatalf("a function waited behind %d busy ones", blocked)
		}
		close(release)
		ended.Wait()
		if n := p.workers.Load(); n > workerMax {
			t.Fatalf("%d workers, bound %d", n, workerMax)
		}
	}
	time.Sleep(10 * time.Millisecond)
	before := p.workers.Load()
	if before == 0 {
		t.Fatal("no idle worker after the functions")
	}
	done := make(chan struct{})
	p.run(func() { close(done) })
	<-done
	if n := p.workers.Load(); n != before {
		t.Fatalf("%d workers after a function with %d idle: a new one started", n, before)
	}
	deadline := time.Now().Add(workerIdle + 5*time.Second)
	for p.workers.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still there after %v idle", p.workers.Load(), workerIdle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
