package vdrive

import (
	"time"

	"github.com/tarnfs/tarn/host/cap"
)

// Queued is how many changes wait in d's directory queues (tests).
func Queued(d *Drive) int {
	d.queues.mu.Lock()
	defer d.queues.mu.Unlock()
	n := 0
	for _, q := range d.queues.m {
		n += len(q.waiting)
	}
	return n
}

// ReadWaiters is how many callers wait for a directory read that starts
// after the one under way (tests).
func ReadWaiters(d *Drive) int {
	d.reads.mu.Lock()
	defer d.reads.mu.Unlock()
	n := 0
	for _, q := range d.reads.m {
		if q.next != nil {
			n += q.next.callers
		}
	}
	return n
}

// Abandon drops b as a kill -9 would: its journal is closed as it is,
// nothing pending is made (tests of replay).
func Abandon(b *Behind) {
	b.mu.Lock()
	b.closed = true
	for _, bd := range b.dirs {
		if bd.timer != nil {
			bd.timer.Stop()
		}
	}
	b.dirs = map[cap.MutableRead]*behindDir{}
	b.mu.Unlock()
	b.stop()
	b.wg.Wait()
	if b.j != nil {
		b.j.close()
	}
}

// JournalCounts is b's journal's transactions, the commits of callers
// they held, records put and deleted, and the time spent writing them
// (tests and benchmarks of the group commit).
func JournalCounts(b *Behind) (txs, ops, puts, dels int64, busy time.Duration) {
	if b.j == nil {
		return 0, 0, 0, 0, 0
	}
	n := &b.j.n
	return n.txs.Load(), n.ops.Load(), n.puts.Load(), n.dels.Load(), time.Duration(n.ns.Load())
}
