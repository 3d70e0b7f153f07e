package sftp

import (
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	xsftp "github.com/pkg/sftp"
)

// The data fast path. pkg/sftp's request server moves every read and
// write request through four goroutines (its read loop, a dispatcher, a
// worker, the answer orderer), each hand-off a wake-up, and on this
// 2-core machine those wake-ups cost more than the bytes: ~100 µs of CPU
// per 32 KiB request. limitsConn, which already frames the client's
// packets before pkg/sftp sees them, now answers READ and WRITE requests
// on the handles of open files itself, in its read loop, in the order
// they arrive: it calls the same handle's ReadAt or WriteAt pkg/sftp
// would call and sends the same answer (the data, EOF, or OK). Everything
// else still goes to pkg/sftp, and so does a read or write that fails:
// pkg/sftp runs it again (both are idempotent) and answers with its usual
// error status, so no error answer differs from before.
//
// Ordering: a request answered here has run before any later packet is
// even read, and a CLOSE of the handle is seen here (and the handle
// forgotten) before pkg/sftp gets it, so a close still follows every read
// and write sent before it. Answers of the two paths may interleave out
// of request order (at packet boundaries), which SFTP allows, but never
// two READ answers of one read-only handle: OpenSSH's scp in SFTP mode
// truncates a download whose answers came out of order (readQueue keeps
// them in order, and the read loop answers none while one is queued).
//
// Handles: pkg/sftp names a handle when it opens the file, before it
// calls the open handler, and keeps the name in an unexported field of
// the request; fastHandlers wraps the open handlers and reads it there
// (reflect). If pkg/sftp ever stops keeping it there, nothing is
// registered and every request takes pkg/sftp's path, as before.

const (
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpFstat    = 8
	fxpFsetstat = 10
	fxpStatus   = 101
	fxpData     = 103

	fxOK = 0 // fxEOF is errors.go's
)

// fastEntry is an open file the fast path serves: r for reads, w for
// writes (nil when the handle was not opened for it); q answers the
// reads of r that must wait for its read-ahead stream (nil: r has none).
type fastEntry struct {
	r io.ReaderAt
	w io.WriterAt
	q *readQueue
}

// fastHandles maps pkg/sftp's handle names to open files.
type fastHandles struct {
	mu     sync.Mutex
	m      map[string]fastEntry
	served *atomic.Int64 // requests answered here (the server's count)
	// queued counts the reads handed to a handle's readQueue (the
	// server's count).
	queued *atomic.Int64
	// send writes a whole answer between pkg/sftp's (limitsConn.send);
	// set before the session's first packet.
	send func([]byte) error
}

func newFastHandles(served, queued *atomic.Int64) *fastHandles {
	return &fastHandles{m: map[string]fastEntry{}, served: served, queued: queued}
}

func (f *fastHandles) get(h string) (fastEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[h]
	return e, ok
}

func (f *fastHandles) forget(h string) {
	f.mu.Lock()
	delete(f.m, h)
	f.mu.Unlock()
}

// add registers the file pkg/sftp just opened for request r.
func (f *fastHandles) add(r *xsftp.Request, e fastEntry) {
	h, ok := requestHandle(r)
	if !ok {
		return
	}
	f.mu.Lock()
	f.m[h] = e
	f.mu.Unlock()
}

// requestHandle is the handle name pkg/sftp gave r's open.
func requestHandle(r *xsftp.Request) (string, bool) {
	v := reflect.ValueOf(r).Elem().FieldByName("handle")
	if !v.IsValid() || v.Kind() != reflect.String || v.String() == "" {
		return "", false
	}
	return v.String(), true
}

// fastHandlers are the session's handlers with the opens of files
// registered for the fast path.
func fastHandlers(fs *fsys, fh *fastHandles) xsftp.Handlers {
	h := fs.handlers()
	h.FileGet = fastGet{fs, fh}
	h.FilePut = fastPut{fs, fh}
	return h
}

type fastGet struct {
	fs *fsys
	fh *fastHandles
}

func (g fastGet) Fileread(r *xsftp.Request) (io.ReaderAt, error) {
	rd, err := g.fs.Fileread(r)
	if err != nil {
		return rd, err
	}
	if sr, ok := rd.(streamReader); ok && g.fh.send != nil {
		q := &readQueue{fh: g.fh, r: sr}
		q.idle = sync.NewCond(&q.mu)
		g.fh.add(r, fastEntry{r: rd, q: q})
		return queuedReader{sr, q}, nil
	}
	g.fh.add(r, fastEntry{r: rd})
	return rd, nil
}

// streamReader is an open file with a read-ahead stream (readHandle):
// the read loop takes what it has fetched (readNow) and leaves the rest
// to the handle's readQueue or to pkg/sftp.
type streamReader interface {
	io.ReaderAt
	io.Closer
	readNow(off int64, n int, use func(a, b []byte) error) (readState, error)
}

// queuedReader is what pkg/sftp gets for a streamReader: its Close (at
// the handle's CLOSE, or the session's end) stops the stream and then
// waits until the queue has answered every read sent before the CLOSE,
// so the close's answer still follows them.
type queuedReader struct {
	streamReader
	q *readQueue
}

var _ xsftp.TransferError = queuedReader{}

// TransferError is called by pkg/sftp before Close when the session ends
// with the handle open: the client is gone, so the queue answers nothing
// more and Close gives it no grace. pkg/sftp closes a departed session's
// handles one after another under its lock, so a grace per handle made a
// session with many stalled handles (sshfs on a hung grid) take seconds
// each to end, and Server.Close waits for sessions.
func (r queuedReader) TransferError(error) {
	r.q.mu.Lock()
	r.q.dead = true
	r.q.idle.Broadcast()
	r.q.mu.Unlock()
}

func (r queuedReader) Close() error {
	// A healthy grid answers the reads still queued within
	// milliseconds; a stalled one gets closeGrace from the moment the
	// read loop saw the CLOSE (closing), then the handle stops and they
	// fail ("read handle closed") instead of holding up pkg/sftp, whose
	// command worker runs this close while its dispatcher, and so the
	// session's every request, waits behind it. A dead queue (the
	// session is going, or an answer could not be sent) gets none.
	r.q.waitFor(r.q.graceLeft())
	// Stopping the handle ends the reads running now within moments: a
	// wait for the stream returns, a read from the grid has its context
	// cancelled (readHandle.Close).
	err := r.streamReader.Close()
	r.q.waitFor(0)
	r.q.mu.Lock()
	if r.q.closeTimer != nil {
		r.q.closeTimer.Stop()
	}
	r.q.mu.Unlock()
	return err
}

// closeGrace bounds how long a CLOSE lets the reads sent before it wait
// for the grid.
const closeGrace = 2 * time.Second

// readQueue answers, on goroutines of its own (at most queueWorkers,
// gone when it is empty), the reads of one handle whose bytes are not at
// hand: those its read-ahead stream has yet to fetch (the first read
// from 0, a block in the window) and those only a read from the grid has
// (a small file, a read away from the stream). The read loop never waits
// for the grid, so a hung storage server holds up only the reads of the
// files that need it, not the session's others (sshfs puts every file on
// one session); and none of them runs on pkg/sftp's workers, whose CLOSE
// (of any handle) and the session's end wait for every read they run.
// Reads run at once, but their answers go out in the order the reads
// came, and while the queue holds one the read loop queues the handle's
// later reads too (scp truncates a download answered out of order). A
// CLOSE waits for the queue (queuedReader), at most closeGrace, and the
// handle is read-only, so no change can pass a queued read.
type readQueue struct {
	fh *fastHandles
	r  streamReader

	mu      sync.Mutex
	idle    *sync.Cond // signalled when the queue is empty and no read runs, or an answer went out
	reqs    []dataRequest
	running int  // worker goroutines
	dead    bool // an answer could not be sent: the session is going
	// seq numbers the reads pushed; sent is the number of the next
	// read whose answer may go out (answers keep the reads' order).
	seq, sent uint64
	// closeAt is when the read loop saw the handle's CLOSE (zero: not
	// yet), and closeTimer stops the handle closeGrace after it, also
	// ending reads that pkg/sftp runs on its workers (a full queue).
	closeAt    time.Time
	closeTimer *time.Timer
}

const (
	// queueMaxReads bounds the reads a handle's queue holds; beyond it
	// the read loop waits for room (push), holding the client back.
	queueMaxReads = 256
	// queueWorkers bounds the reads of one handle that run at once, as
	// pkg/sftp's 8 workers bounded those of a session: reads of
	// different segments of a file fetch them in parallel.
	queueWorkers = 4
)

// closing is called by the read loop when it reads the handle's CLOSE:
// the reads sent before it get closeGrace from now, then the handle
// stops (its grid reads are cancelled and fail), wherever they run.
func (q *readQueue) closing() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closeAt.IsZero() {
		return
	}
	q.closeAt = time.Now()
	r := q.r
	q.closeTimer = time.AfterFunc(closeGrace, func() { r.Close() })
}

// graceLeft is what is left of the CLOSE's grace (closeGrace when the
// read loop did not see it; at least a moment, as 0 means no limit to
// waitFor).
func (q *readQueue) graceLeft() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closeAt.IsZero() {
		return closeGrace
	}
	return max(closeGrace-time.Since(q.closeAt), time.Millisecond)
}

// push queues a read (its handle is not kept); false when the session is
// going. A full queue holds up the read loop (and so the client, as
// pkg/sftp's full queues do) until a worker takes a read: a read handed
// to pkg/sftp instead was answered before the queued ones, and scp -X
// nrequests=400 cut its download there.
func (q *readQueue) push(d dataRequest) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.dead && len(q.reqs) >= queueMaxReads {
		q.idle.Wait()
	}
	if q.dead {
		return false
	}
	d.handle, d.data = "", nil
	d.seq = q.seq
	q.seq++
	q.reqs = append(q.reqs, d)
	if q.running < queueWorkers && q.running < len(q.reqs) {
		q.running++
		go q.run()
	}
	return true
}

// run answers queued reads until none is left: the data, EOF, or the
// failure pkg/sftp would have answered for the same error.
func (q *readQueue) run() {
	bp := answerBufs.Get().(*[]byte)
	defer answerBufs.Put(bp)
	out := *bp
	for {
		q.mu.Lock()
		if len(q.reqs) == 0 || q.dead {
			if q.dead {
				q.reqs = nil
			}
			q.running--
			if q.running == 0 {
				q.idle.Broadcast()
			}
			q.mu.Unlock()
			return
		}
		d := q.reqs[0]
		q.reqs = q.reqs[1:]
		q.mu.Unlock()

		n := min(d.n, maxData)
		out = readAnswer(out[:13+n], d.id, d.off, q.r)
		// Answers go out in the order the reads came (workers take
		// them in that order, and wait for the ones before).
		q.mu.Lock()
		for q.sent != d.seq && !q.dead {
			q.idle.Wait()
		}
		dead := q.dead
		q.mu.Unlock()
		err := errQueueClosed
		if !dead {
			err = q.fh.send(out)
		}
		q.mu.Lock()
		q.sent++
		if err != nil {
			q.dead = true
		}
		q.idle.Broadcast()
		q.mu.Unlock()
		if err == nil {
			q.fh.served.Add(1)
		}
	}
}

// busy reports whether a read of the queue has not been answered yet: a
// later read of the handle must then be queued behind it, not answered
// by the read loop before it.
func (q *readQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.reqs) > 0 || q.running > 0
}

// answerBufs hold the answers queue workers build (a worker lives for a
// burst of reads: a fresh buffer of the largest answer each, zeroed,
// cost more than the reads of a small file).
var answerBufs = sync.Pool{New: func() any {
	b := make([]byte, 13+maxData)
	return &b
}}

// waitFor returns once the queue is empty and no read of it runs, or
// after d (0: no limit); with d > 0, at once when the queue is dead.
func (q *readQueue) waitFor(d time.Duration) {
	expired := false
	if d > 0 {
		t := time.AfterFunc(d, func() {
			q.mu.Lock()
			expired = true
			q.idle.Broadcast()
			q.mu.Unlock()
		})
		defer t.Stop()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.running > 0 && !expired && !(d > 0 && q.dead) {
		q.idle.Wait()
	}
}

// readAnswer reads into buf[13:] at off and returns the answer: a DATA
// packet built in buf, EOF, or the error's status.
func readAnswer(buf []byte, id uint32, off int64, r io.ReaderAt) []byte {
	k, err := r.ReadAt(buf[13:], off)
	if err != nil && (err != io.EOF || k == 0) {
		if err == io.EOF {
			return statusPacket(buf, id, fxEOF)
		}
		return errorPacket(buf, id, err)
	}
	return dataPacket(buf, id, k)
}

// dataPacket frames the k bytes at buf[13:] as the DATA answer to id.
func dataPacket(buf []byte, id uint32, k int) []byte {
	dataHeader(buf, id, k)
	return buf[:13+k]
}

// dataHeader writes into b (from its start) the 13-byte header of the
// DATA answer to id that carries k bytes.
func dataHeader(b []byte, id uint32, k int) []byte {
	b = binary.BigEndian.AppendUint32(b[:0], uint32(9+k))
	b = append(b, fxpData)
	b = binary.BigEndian.AppendUint32(b, id)
	return binary.BigEndian.AppendUint32(b, uint32(k))
}

type fastPut struct {
	fs *fsys
	fh *fastHandles
}

var (
	_ xsftp.FileReader     = fastGet{}
	_ xsftp.FileWriter     = fastPut{}
	_ xsftp.OpenFileWriter = fastPut{}
)

func (p fastPut) Filewrite(r *xsftp.Request) (io.WriterAt, error) {
	w, err := p.fs.Filewrite(r)
	if err == nil {
		p.fh.add(r, fastEntry{w: w})
	}
	return w, err
}

func (p fastPut) OpenFile(r *xsftp.Request) (xsftp.WriterAtReaderAt, error) {
	rw, err := p.fs.OpenFile(r)
	if err == nil {
		p.fh.add(r, fastEntry{r: rw, w: rw})
	}
	return rw, err
}

// dataRequest is a parsed READ or WRITE request.
type dataRequest struct {
	id     uint32
	handle string
	off    int64
	n      uint32 // READ: the length asked for
	data   []byte // WRITE: the bytes
	seq    uint64 // READ in a readQueue: its place there
}

// parseData parses the body (after the type byte) of a READ or WRITE.
func parseData(typ byte, b []byte) (dataRequest, bool) {
	var d dataRequest
	if len(b) < 8 {
		return d, false
	}
	d.id = binary.BigEndian.Uint32(b)
	hl := binary.BigEndian.Uint32(b[4:])
	b = b[8:]
	if uint64(hl) > uint64(len(b)) {
		return d, false
	}
	d.handle, b = string(b[:hl]), b[hl:]
	if len(b) < 12 {
		return d, false
	}
	off := binary.BigEndian.Uint64(b)
	if off > 1<<62 {
		return d, false // pkg/sftp's answer to a negative offset stands
	}
	d.off = int64(off)
	d.n = binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	if typ == fxpWrite {
		if uint64(d.n) > uint64(len(b)) {
			return d, false
		}
		d.data = b[:d.n]
	}
	return d, true
}

// closeHandle is the handle a CLOSE body (after the type byte) names.
func closeHandle(b []byte) (string, bool) {
	_, h, ok := idHandle(b)
	return h, ok
}

// idHandle reads the id and handle that begin a request's body (after
// the type byte): CLOSE, READ, WRITE, FSTAT, FSETSTAT.
func idHandle(b []byte) (uint32, string, bool) {
	if len(b) < 8 {
		return 0, "", false
	}
	hl := binary.BigEndian.Uint32(b[4:])
	if uint64(hl) > uint64(len(b)-8) {
		return 0, "", false
	}
	return binary.BigEndian.Uint32(b), string(b[8 : 8+hl]), true
}

// statusPacket is pkg/sftp's status answer for code (OK: no message;
// EOF: "EOF", as io.EOF's text).
func statusPacket(b []byte, id, code uint32) []byte {
	msg := ""
	if code == fxEOF {
		msg = io.EOF.Error()
	}
	b = append(b[:0], 0, 0, 0, 0, fxpStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, code)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, msg...)
	b = binary.BigEndian.AppendUint32(b, 0) // language tag
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// wrongKind is the message of the failure answered to a READ or WRITE on
// a handle not opened for it.
var wrongKind = map[byte]string{
	fxpRead:  "read: the handle is not open for reading",
	fxpWrite: "write: the handle is not open for writing",
}

// failurePacket is an SSH_FX_FAILURE status answer with msg.
func failurePacket(b []byte, id uint32, msg string) []byte {
	return codePacket(b, id, fxFailure, msg)
}

// errorPacket is the status answer pkg/sftp gives a handler's err: the
// code it carries (toStatus), else failure, and its text.
func errorPacket(b []byte, id uint32, err error) []byte {
	code := uint32(fxFailure)
	for c, fx := range fxErrors {
		if errors.Is(err, fx) {
			code = c
			break
		}
	}
	return codePacket(b, id, code, err.Error())
}

// codePacket is a status answer with code and msg.
func codePacket(b []byte, id, code uint32, msg string) []byte {
	b = append(b[:0], 0, 0, 0, 0, fxpStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, code)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, msg...)
	b = binary.BigEndian.AppendUint32(b, 0) // language tag
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// gridWaiter is an open file that can tell whether an access at off may
// wait on the grid (readHandle, writeHandle).
type gridWaiter interface{ mayWaitOnGrid(off int64) bool }

// serveData answers a READ or WRITE on a registered handle, returning
// false when pkg/sftp must answer it instead (an unknown handle, a
// request of a kind the handle was not opened for, or a failure).
func (c *limitsConn) serveData(typ byte, body []byte) (bool, error) {
	d, ok := parseData(typ, body)
	if !ok {
		return false, nil
	}
	e, ok := c.fast.get(d.handle)
	if !ok {
		return false, nil
	}
	// A request of the other kind than the handle was opened for is
	// refused here: pkg/sftp runs it as the handle's kind, so a READ on a
	// write-only handle wrote its answer buffer (zeros, or a reused page
	// holding an earlier packet's bytes) into the file at the offset and
	// answered OK, and a WRITE on a read-only one answered with the file's
	// bytes. OpenSSH's server fails both (read(2) or write(2) of the wrong
	// kind of descriptor): SSH_FX_FAILURE.
	if typ == fxpRead && e.r == nil || typ == fxpWrite && e.w == nil {
		c.out = failurePacket(c.out, d.id, wrongKind[typ])
		return true, c.send(c.out)
	}
	// Requests on the same handle that pkg/sftp has not answered yet (a
	// truncate by FSETSTAT, a write or read that took its path) run on its
	// workers; one answered here now could pass them. pkg/sftp gets this
	// one too, and orders it as it orders its own.
	if c.mustFollow(typ, d.handle) {
		return false, nil
	}
	// The loop answers only what needs no wait on the grid (bytes in the
	// spool, or fetched by the read stream): a write or read that must
	// first fetch an existing file's content (settleOld) or read the
	// grid goes to pkg/sftp's workers, and a read the stream has yet to
	// fetch to the handle's readQueue, so none of them holds up the
	// session's other files (sshfs sends all of them on one session) or
	// waits for a hung server in the read loop.
	if w, ok := e.w.(gridWaiter); ok && w.mayWaitOnGrid(d.off) {
		return false, nil
	}
	switch {
	case typ == fxpWrite && e.w != nil:
		if _, err := e.w.WriteAt(d.data, d.off); err != nil {
			return false, nil
		}
		c.out = statusPacket(c.out, d.id, fxOK)
	case typ == fxpRead && e.r != nil:
		n := min(d.n, maxData)
		if sr, ok := e.r.(streamReader); ok {
			// Answers to the reads of a handle keep the reads' order:
			// OpenSSH's scp (SFTP mode) truncates a download it got out
			// of order at the first read answered late ("highwater"),
			// and says nothing. So while a read of the handle waits in
			// its queue, later ones wait behind it.
			if e.q != nil && e.q.busy() {
				if e.q.push(d) {
					c.fast.queued.Add(1)
					return true, nil
				}
				return false, nil
			}
			// The answer goes to the send queue straight from the
			// stream's blocks: header and data copied once, into the
			// queue (not into c.out first).
			st, err := sr.readNow(d.off, int(n), func(a, b []byte) error {
				k := len(a) + len(b)
				if k == 0 {
					c.out = statusPacket(c.out, d.id, fxEOF)
					return c.send(c.out)
				}
				c.out = dataHeader(c.out, d.id, k)
				return c.send3(c.out, a, b)
			})
			switch {
			case st == readReady:
				if err == nil {
					c.fast.served.Add(1)
				}
				return true, err
			case st != readReady && e.q != nil && e.q.push(d):
				// Waiting for the stream, or reading the grid: off
				// the loop and off pkg/sftp's workers.
				c.fast.queued.Add(1)
				return true, nil
			}
			return false, nil
		}
		if cap(c.out) < 13+int(n) {
			c.out = make([]byte, 13+int(n), 13+maxData)
		}
		buf := c.out[:13+n]
		k, err := e.r.ReadAt(buf[13:], d.off)
		if err != nil && (err != io.EOF || k == 0) {
			if err != io.EOF {
				return false, nil
			}
			c.out = statusPacket(c.out, d.id, fxEOF)
			break
		}
		c.out = dataPacket(buf, d.id, k)
	default:
		return false, nil
	}
	c.fast.served.Add(1)
	return true, c.send(c.out)
}
