// Package gopool runs short functions on goroutines that outlive them.
//
// A fresh goroutine starts on an 8 KiB stack, and a gRPC call grows it
// (runtime.morestack copies the stack) every time: ~6% of a client node's
// CPU under `tarn cp -r` of small files, ~7% of a storage node's. A
// worker of a Pool keeps its grown stack for the next function. Workers
// that get no function for the pool's idle time end, so an idle process
// keeps none.
package gopool

import (
	"sync/atomic"
	"time"
)

// Pool runs functions on up to max workers; a function finding them all
// busy gets a goroutine of its own, so none waits for another.
type Pool struct {
	work    chan func()
	workers atomic.Int32
	max     int32
	idle    time.Duration
}

// New is a pool of at most max workers, each ending after idle without a
// function.
func New(max int, idle time.Duration) *Pool {
	return &Pool{work: make(chan func()), max: int32(max), idle: idle}
}

// Go runs f on an idle worker, or on a new one.
func (p *Pool) Go(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	if p.workers.Add(1) > p.max {
		p.workers.Add(-1)
		go f()
		return
	}
	go p.worker(f)
}

// Workers is how many workers the pool has now.
func (p *Pool) Workers() int { return int(p.workers.Load()) }

func (p *Pool) worker(f func()) {
	defer p.workers.Add(-1)
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		f()
		f = nil
		idle.Reset(p.idle)
		select {
		case f = <-p.work:
		case <-idle.C:
			return
		}
	}
}
