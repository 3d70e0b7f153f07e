package grid

import (
	"sync/atomic"
	"time"
)

// callPool runs the per-server calls of small uploads (putRound) on
// goroutines that outlive a call. A fresh goroutine starts on an 8 KiB
// stack, and a gRPC call grows it (runtime.morestack copies the stack)
// at every upload: ~6% of a client node's CPU under `tarn cp -r` of
// small files. A worker keeps its grown stack for the next call. Workers
// that find no call for callPoolIdle end, so an idle process keeps none.
type callPool struct {
	work    chan func()
	workers atomic.Int32
}

const (
	// callPoolMax bounds the workers; a call finding them all busy gets a
	// goroutine of its own, as before.
	callPoolMax = 64
	// callPoolIdle is how long a worker waits for another call.
	callPoolIdle = time.Second
)

// calls is the process's pool (shared by every Client: a worker holds
// nothing of a client between calls).
var calls = &callPool{work: make(chan func())}

// run runs f on an idle worker, or on a new one.
func (p *callPool) run(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	if p.workers.Add(1) > callPoolMax {
		p.workers.Add(-1)
		go f()
		return
	}
	go p.worker(f)
}

func (p *callPool) worker(f func()) {
	defer p.workers.Add(-1)
	idle := time.NewTimer(callPoolIdle)
	defer idle.Stop()
	for {
		f()
		f = nil
		idle.Reset(callPoolIdle)
		select {
		case f = <-p.work:
		case <-idle.C:
			return
		}
	}
}
