package storageserver

import (
	"sync/atomic"
	"time"
)

// workerPool runs short functions on goroutines that outlive them. A
// fresh goroutine starts on a small stack that a gRPC call grows (and
// runtime.morestack copies) every time; a worker keeps its grown stack
// for the next function. Workers that get no function for workerIdle
// end, so an idle process keeps none. (host/grid's callPool is the same.)
type workerPool struct {
	work    chan func()
	workers atomic.Int32
}

const (
	// workerMax bounds the workers; a function finding them all busy
	// gets a goroutine of its own.
	workerMax = 64
	// workerIdle is how long a worker waits for another function.
	workerIdle = time.Second
)

// workers is the package's pool.
var workers = &workerPool{work: make(chan func())}

// run runs f on an idle worker, or on a new one.
func (p *workerPool) run(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	if p.workers.Add(1) > workerMax {
		p.workers.Add(-1)
		go f()
		return
	}
	go p.worker(f)
}

func (p *workerPool) worker(f func()) {
	defer p.workers.Add(-1)
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil
		idle.Reset(workerIdle)
		select {
		case f = <-p.work:
		case <-idle.C:
			return
		}
	}
}
