package vdrive

import (
	"context"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
)

// Directory reads of one slot by this process are shared: a caller that
// wants a directory's current version while a read of it is already under
// way waits for the read that starts next, and every caller that arrived
// meanwhile takes that one read's answer. A read that began before a
// caller asked may predate a change the caller has seen, so it is never
// shared with that caller; the next one began after each of them asked,
// so its answer is as fresh as a read of their own. A WebDAV client that
// sends MKCOL of its folder before every file (rclone does) makes one
// such read per file; with several transfers at once, they share reads.

// slotReads are a Drive's reads under way, by slot.
type slotReads struct {
	mu sync.Mutex
	m  map[cap.MutableRead]*slotReadQueue
}

// slotReadQueue is the read of one slot under way (running) and the one
// that callers arriving during it wait for (next).
type slotReadQueue struct {
	running, next *sharedRead
}

// sharedRead is one read and its answer, ready when done is closed.
type sharedRead struct {
	done    chan struct{}
	b       []byte
	err     error
	started time.Time
	callers int // callers waiting for it (next reads; tests)
}

// readRoot reads the slot's current content, sharing the read with the
// callers that ask at the same time (see above). It also returns when the
// read began, for the root cache.
func (d *Drive) readRoot(ctx context.Context, k cap.MutableRead) ([]byte, time.Time, error) {
	rs := d.reads
	rs.mu.Lock()
	if rs.m == nil {
		rs.m = map[cap.MutableRead]*slotReadQueue{}
	}
	q := rs.m[k]
	if q == nil {
		q = &slotReadQueue{}
		rs.m[k] = q
	}
	if q.running == nil {
		r := &sharedRead{done: make(chan struct{}), started: time.Now()}
		q.running = r
		rs.mu.Unlock()
		d.runRead(ctx, k, q, r)
		return r.b, r.started, r.err
	}
	r, lead := q.next, false
	if r == nil {
		r, lead = &sharedRead{done: make(chan struct{})}, true
		q.next = r
	}
	r.callers++
	prev := q.running
	rs.mu.Unlock()
	if lead {
		// Read once the running read is over, for all who wait on r.
		select {
		case <-prev.done:
		case <-ctx.Done():
		}
		rs.mu.Lock()
		if q.next == r {
			q.next = nil
		}
		if err := ctx.Err(); err != nil {
			// Given up: those waiting on r read for themselves.
			rs.mu.Unlock()
			r.err = err
			close(r.done)
			return nil, time.Time{}, err
		}
		running := q.running == nil
		if running {
			q.running = r
		}
		rs.mu.Unlock()
		r.started = time.Now()
		if running {
			d.runRead(ctx, k, q, r)
		} else {
			r.b, r.err = d.store.ReadMutable(ctx, k)
			close(r.done)
		}
		return r.b, r.started, r.err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
	if r.err != nil {
		// The shared read failed (perhaps only its reader's context
		// ended): read alone.
		started := time.Now()
		b, err := d.store.ReadMutable(ctx, k)
		return b, started, err
	}
	return r.b, r.started, nil
}

// runRead makes r, q's running read, and then clears it.
func (d *Drive) runRead(ctx context.Context, k cap.MutableRead, q *slotReadQueue, r *sharedRead) {
	defer func() {
		rs := d.reads
		rs.mu.Lock()
		if q.running == r {
			q.running = nil
		}
		if q.running == nil && q.next == nil && rs.m[k] == q {
			delete(rs.m, k)
		}
		rs.mu.Unlock()
		close(r.done)
	}()
	r.b, r.err = d.store.ReadMutable(ctx, k)
}
