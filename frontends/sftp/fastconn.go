package sftp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// Fewer, larger writes under SSH and SFTP. Left alone, every SFTP answer
// costs several system calls and wake-ups at both ends: pkg/sftp writes a
// data answer as its header and then its payload, each of which
// x/crypto/ssh sends as its own SSH packet (a 13-byte packet beside every
// 32 KiB one), and x/crypto/ssh's transport hands each packet to the
// socket in one or two writes (its 4 KiB bufio.Writer splits a larger
// packet) and reads each in two or more. On this 2-core machine those
// calls, and the scheduling they cause at the client that reads them, were
// a large part of what SFTP added to a transfer's CPU per byte.
//
// Two queues cut them, neither adding latency: each writes what it holds
// as soon as its writer goroutine gets to it, so what accumulates while
// that goroutine is busy goes out together.
//   - sendQueue, between pkg/sftp (through limitsConn) and the channel,
//     hands the channel whole runs of answers: x/crypto/ssh then cuts them
//     into full-size SSH packets instead of a small one per answer.
//   - batchConn, between x/crypto/ssh and the TCP connection, gathers the
//     transport's writes into one system call per batch and reads the
//     socket in large pieces.

const (
	// queueMax bounds the bytes a queue holds before its writers wait:
	// a few SFTP answers of OpenSSH's largest size, or SSH packets.
	queueMax = 512 << 10
	// connReadBuf is batchConn's read buffer: one read takes whatever
	// the socket holds, up to this.
	connReadBuf = 256 << 10
	// closeFlushTimeout bounds how long Close waits for queued bytes to
	// reach a peer that no longer reads.
	closeFlushTimeout = 5 * time.Second
)

// errQueueClosed is returned by writes after Close.
var errQueueClosed = errors.New("write queue closed")

// writeQueue is the core of both queues: Write copies into a pending
// buffer and returns; one goroutine writes the pending bytes to out, all
// of them in one call, whenever there are some. A write error is kept and
// returned by every later Write and by Flush.
type writeQueue struct {
	out   func([]byte) error
	ready func() bool  // whether the pending bytes may be written now (nil: always)
	added func([]byte) // called with each queued write, under mu (nil: none)

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	spare   []byte
	busy    bool // the goroutine is writing a batch
	yielded bool // the goroutine has let the writers run once since it woke
	err     error
	closed  bool
	done    chan struct{}
}

func newWriteQueue(out func([]byte) error, ready func() bool) *writeQueue {
	q := &writeQueue{out: out, ready: ready, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.run()
	return q
}

// Write queues a copy of p. It waits while queueMax bytes are pending,
// but only between packets (ready): the rest of a packet begun is always
// taken, since the goroutine writes nothing until the packet is whole.
func (q *writeQueue) Write(p []byte) (int, error) {
	return q.write3(p, nil, nil)
}

// write3 queues a copy of a, b and c, one after the other, as one write:
// no other write comes between them.
func (q *writeQueue) write3(a, b, c []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && !q.closed && len(q.pending) >= queueMax && (q.ready == nil || q.ready()) {
		q.cond.Wait()
	}
	if q.err != nil {
		return 0, q.err
	}
	if q.closed {
		return 0, errQueueClosed
	}
	for _, p := range [3][]byte{a, b, c} {
		if len(p) == 0 {
			continue
		}
		q.pending = append(q.pending, p...)
		if q.added != nil {
			q.added(p)
		}
	}
	q.cond.Broadcast()
	return len(a) + len(b) + len(c), nil
}

// run is the writer goroutine.
func (q *writeQueue) run() {
	defer close(q.done)
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for q.err == nil && (len(q.pending) == 0 || (q.ready != nil && !q.ready())) {
			if q.closed {
				return
			}
			q.cond.Wait()
		}
		if q.err != nil {
			return
		}
		if !q.yielded {
			// Woken for the first bytes: let their writer add the rest
			// of what it has before taking the batch.
			q.yielded = true
			q.mu.Unlock()
			runtime.Gosched()
			q.mu.Lock()
			continue
		}
		q.yielded = false
		batch := q.pending
		q.pending, q.spare = q.spare[:0], nil
		q.busy = true
		q.cond.Broadcast() // writers waiting for room
		q.mu.Unlock()
		err := q.out(batch)
		q.mu.Lock()
		q.busy = false
		if err != nil && q.err == nil {
			q.err = err
		}
		if cap(batch) <= 2*queueMax {
			q.spare = batch[:0]
		}
		q.cond.Broadcast()
	}
}

// Flush waits until every byte queued so far is written (or writing
// failed) and returns the write error, if any.
func (q *writeQueue) Flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && (len(q.pending) > 0 || q.busy) {
		q.cond.Wait()
	}
	return q.err
}

// stop ends the writer goroutine once the pending bytes are written (or
// writing fails); later writes fail.
func (q *writeQueue) stop() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	<-q.done
}

// sendQueue sits between limitsConn and the SSH channel: reads pass
// through, writes are queued and written to the channel in runs of whole
// SFTP packets (a packet's header is never sent without its payload, so
// x/crypto/ssh never sends it as a packet of its own).
type sendQueue struct {
	rw io.ReadWriteCloser
	q  *writeQueue

	// Outgoing SFTP framing, followed through the writes (guarded by q.mu):
	// bytes of the current packet still to come. lost: the framing is
	// not known, so pending bytes are written as they come.
	wleft uint64
	lost  bool
	hdr   [4]byte
	nhdr  int
}

func newSendQueue(rw io.ReadWriteCloser) *sendQueue {
	s := &sendQueue{rw: rw}
	s.q = newWriteQueue(func(b []byte) error {
		_, err := rw.Write(b)
		return err
	}, s.boundary)
	s.q.added = s.track
	return s
}

// boundary reports whether the pending bytes end with a whole packet (or
// the framing is lost). Called with q.mu held.
func (s *sendQueue) boundary() bool { return s.lost || (s.wleft == 0 && s.nhdr == 0) }

func (s *sendQueue) Read(p []byte) (int, error) { return s.rw.Read(p) }

// Write queues p, following the SFTP packets' lengths through it.
func (s *sendQueue) Write(p []byte) (int, error) { return s.q.Write(p) }

// write3 queues a, b and c as one write: a packet built from pieces (an
// answer's header and its data, straight from a read stream's blocks)
// is copied once, into the queue.
func (s *sendQueue) write3(a, b, c []byte) (int, error) { return s.q.write3(a, b, c) }

// track follows the packet lengths through b (q.mu held).
func (s *sendQueue) track(b []byte) {
	for len(b) > 0 && !s.lost {
		if s.wleft == 0 {
			k := copy(s.hdr[s.nhdr:], b)
			s.nhdr += k
			b = b[k:]
			if s.nhdr < 4 {
				return
			}
			s.nhdr = 0
			s.wleft = uint64(uint32(s.hdr[0])<<24 | uint32(s.hdr[1])<<16 | uint32(s.hdr[2])<<8 | uint32(s.hdr[3]))
			if s.wleft > maxPacket+1024 {
				s.lost = true // not a packet pkg/sftp would write
				return
			}
			continue
		}
		k := min(s.wleft, uint64(len(b)))
		s.wleft -= k
		b = b[k:]
	}
}

// Flush waits until everything written so far has gone to the channel.
func (s *sendQueue) Flush() error { return s.q.Flush() }

// Close writes what is queued (it may be cut: pkg/sftp closes only when
// the session ends) and closes the channel.
func (s *sendQueue) Close() error {
	s.q.mu.Lock()
	s.lost = true // whatever is pending goes out as it is
	s.q.mu.Unlock()
	s.q.stop()
	return s.rw.Close()
}

// batchConn is the TCP connection under x/crypto/ssh: its writes are
// queued and written in batches, and reads come through a large buffer.
type batchConn struct {
	net.Conn
	r *bufio.Reader
	q *writeQueue

	closeOnce sync.Once
	closeErr  error
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, r: bufio.NewReaderSize(c, connReadBuf)}
	b.q = newWriteQueue(func(p []byte) error {
		_, err := c.Write(p)
		return err
	}, nil)
	return b
}

func (b *batchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write queues p; an earlier batch's write error is returned here.
func (b *batchConn) Write(p []byte) (int, error) { return b.q.Write(p) }

// Close sends what is queued (waiting at most closeFlushTimeout for a
// peer that does not read) and closes the connection.
func (b *batchConn) Close() error {
	b.closeOnce.Do(func() {
		b.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		b.q.stop()
		b.closeErr = b.Conn.Close()
	})
	return b.closeErr
}
