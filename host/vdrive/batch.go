package vdrive

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
)

// Concurrent changes of one directory by this process (Writer.Close, Put,
// Link and SetMetadata of many files at once, as a WebDAV or SFTP client
// with several transfers makes them) are coalesced: one caller at a time
// changes the directory, and the changes queued meanwhile are applied
// together by the next one, in one test-and-set Modify. Without it, each
// file costs a directory change of its own, and the callers' changes race
// one another for the slot, losing and redoing half of them.
//
// Each queued change keeps its own result: its function runs on the
// shared edit in arrival order, so it sees the changes queued before it
// (as if they were made one by one), and its error goes back to its
// caller alone while the others are still made. A change is acknowledged
// only when the Modify that holds it has succeeded; if that fails, every
// change in it fails with that error.

// maxBatch bounds how many changes one directory change applies.
const maxBatch = 256

// dirQueues are a Drive's per-directory queues of changes.
type dirQueues struct {
	mu sync.Mutex
	m  map[cap.MutableRead]*dirQueue
}

// dirQueue holds the changes waiting for one directory; busy while a
// caller is changing it.
type dirQueue struct {
	waiting []*queuedEdit
	busy    bool
}

// queuedEdit is one caller's change. apply must leave the Tx untouched
// when it fails (check first, change last), since the other changes of
// the batch are still made. A nil apply only makes the folder's
// write-behind links (Behind.flush).
type queuedEdit struct {
	ctx   context.Context
	apply func(*dirnode.Tx) error
	err   error
	// done gets false when err is final, true when this caller is to
	// change the directory for the queue next.
	done chan bool
}

// editQueued makes fn's change to the directory ref, together with the
// changes other callers queue for it at the same time (see above). fn may
// run more than once, each time on a newer version, and must leave the
// Tx untouched when it fails.
func (d *Drive) editQueued(ctx context.Context, ref dirRef, fn func(*dirnode.Tx) error) error {
	if ref.w == nil {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e := &queuedEdit{ctx: ctx, apply: fn, done: make(chan bool, 1)}
	k := ref.r.Slot
	d.queues.mu.Lock()
	if d.queues.m == nil {
		d.queues.m = map[cap.MutableRead]*dirQueue{}
	}
	q := d.queues.m[k]
	if q == nil {
		q = &dirQueue{}
		d.queues.m[k] = q
	}
	q.waiting = append(q.waiting, e)
	lead := !q.busy
	q.busy = true
	d.queues.mu.Unlock()
	if !lead && !<-e.done {
		return e.err
	}
	d.runQueued(ref, k, q)
	return e.err
}

// runQueued takes the changes waiting on q (the caller's own first),
// makes them in one directory change, answers their callers and hands the
// queue on to the next caller waiting, if any.
func (d *Drive) runQueued(ref dirRef, k cap.MutableRead, q *dirQueue) {
	d.queues.mu.Lock()
	n := min(len(q.waiting), maxBatch)
	batch := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	d.queues.mu.Unlock()

	defer func() {
		p := recover()
		for _, e := range batch[1:] {
			if p != nil {
				e.err = fmt.Errorf("directory change failed: a change batched with it panicked: %v", p)
			}
			e.done <- false
		}
		d.queues.mu.Lock()
		if len(q.waiting) == 0 {
			q.busy = false
			delete(d.queues.m, k)
			d.queues.mu.Unlock()
		} else {
			next := q.waiting[0]
			d.queues.mu.Unlock()
			next.done <- true
		}
		if p != nil {
			panic(p)
		}
	}()

	// A caller whose context has ended is not waited for.
	live := make([]*queuedEdit, 0, len(batch))
	work := false
	for _, e := range batch {
		if err := e.ctx.Err(); err != nil {
			e.err = err
		} else {
			live = append(live, e)
			work = work || e.apply != nil
		}
	}
	if len(live) == 0 {
		return
	}
	ctx := live[0].ctx
	if len(live) > 1 {
		var stop func()
		ctx, stop = batchContext(live)
		defer stop()
	}
	// The folder's write-behind links come first, as they were
	// acknowledged before any change queued now (behind.go); take checks
	// their folder's path under ctx (behind_path.go).
	var links []*plink
	if d.behind != nil {
		links = d.behind.take(ctx, k)
	}
	if !work && len(links) == 0 {
		return // flushes only, with nothing to make
	}
	var err error
	if len(links) > 0 {
		defer func() {
			if p := recover(); p != nil {
				d.behind.settle(k, links, fmt.Errorf("directory change panicked: %v", p))
				panic(p)
			}
			d.behind.settle(k, links, err)
		}()
	}
	err = d.edit(ctx, ref, func(tx *dirnode.Tx) error {
		for _, l := range links {
			l.err = l.apply(tx)
		}
		for _, e := range live {
			if e.apply != nil {
				e.err = e.apply(tx)
			}
		}
		return nil
	})
	if err != nil {
		for _, e := range live {
			e.err = err
		}
	}
}

// batchContext is the context of a batched change: it carries the first
// caller's values and ends when every caller's context has ended, so that
// one caller giving up does not fail the others.
func batchContext(es []*queuedEdit) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(es[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(es)))
	stops := make([]func() bool, len(es))
	for i, e := range es {
		stops[i] = context.AfterFunc(e.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}
