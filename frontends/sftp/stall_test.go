package sftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestReadLoopNeverWaitsOnGrid: one SSH session, two open files. A READ
// of a file whose bytes must come from a grid that hangs (3 of 5 storage
// servers frozen: the download cannot finish before server_timeout, 10 s
// here) must not hold up a READ of the other file, whose bytes are
// already fetched: the read loop hands the first to the handle's own
// worker and answers the second at once. After the thaw the stalled read
// is answered with the file's bytes, and a CLOSE sent behind it is
// answered after it.
func TestReadLoopNeverWaitsOnGrid(t *testing.T) {
	cases := []struct {
		name string
		// warm: read the stalled file at 0 before the freeze, so its
		// stream has run; at: where the stalled READ asks.
		warm bool
		at   uint64
	}{
		{name: "first read starts the stream", at: 0},
		// 20 MiB: past what the grid's own read-ahead (4 segments) can have
		// fetched before the freeze, within readReach of the stream.
		{name: "read inside the read-ahead window", warm: true, at: 20 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			d := e.drive("alice")
			stalled, other := pseudo(51, 24<<20), pseudo(52, 3<<20)
			e.put(d, "/stalled.bin", stalled)
			e.put(d, "/other.bin", other)
			c := rawSession(t, e)
			open := func(p string) string { return mustOpenRead(t, c, p) }
			hs, ho := open("/stalled.bin"), open("/other.bin")
			// The other file's stream fetches it whole (3 blocks, within
			// the window) once read at 0.
			var reqs []readReq
			for off := 0; off < len(other); off += 32 << 10 {
				reqs = append(reqs, readReq{h: ho, off: uint64(off), n: 32 << 10})
			}
			if tc.warm {
				reqs = append(reqs, readReq{h: hs, off: 0, n: 32 << 10})
			}
			got, codes := pipelineReads(t, c, reqs)
			for _, q := range reqs {
				src := other
				if q.h == hs {
					src = stalled
				}
				if !bytes.Equal(got[q.id], src[q.off:q.off+uint64(q.n)]) {
					t.Fatalf("read at %d before the freeze: status %d", q.off, codes[q.id])
				}
			}
			freezeServers(t, e, 3)
			time.Sleep(50 * time.Millisecond)

			send := func(typ byte, body pkt) uint32 {
				c.id++
				if err := c.send(typ, pkt{}.u32(c.id).append(body)); err != nil {
					t.Fatal(err)
				}
				return c.id
			}
			queued := e.srv.fastQueued.Load()
			sID := send(pRead, pkt{}.str(hs).u64(tc.at).u32(32<<10))
			start := time.Now()
			oID := send(pRead, pkt{}.str(ho).u64(2<<20+77).u32(32<<10))
			typ, body, err := c.recv()
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if id := binary.BigEndian.Uint32(body); id != oID {
				t.Fatalf("first answer is to request %d (type %d) after %s, want the other file's read %d", id, typ, took, oID)
			}
			if took > 2*time.Second {
				t.Fatalf("the other file's read took %s while a read of a stalled file waited", took)
			}
			want := other[2<<20+77 : 2<<20+77+32<<10]
			if typ != pData || !bytes.Equal(body[8:], want) {
				t.Fatalf("other file's read: type %d, %d bytes", typ, len(body))
			}
			t.Logf("the other file answered in %s", took)
			if e.srv.fastQueued.Load() == queued {
				t.Fatal("the stalled read was not handed to its handle's queue")
			}
			// A close of the stalled handle sent now is answered after
			// the read sent before it.
			cID := send(pClose, pkt{}.str(hs))
			time.Sleep(200 * time.Millisecond)
			for _, s := range e.grid.Servers {
				s.Thaw()
			}
			typ, body, err = c.recv()
			if err != nil {
				t.Fatal(err)
			}
			if id := binary.BigEndian.Uint32(body); id != sID {
				t.Fatalf("answer to %d (type %d) before the stalled read %d", id, typ, sID)
			}
			if typ == pData && !bytes.Equal(body[8:], stalled[tc.at:tc.at+32<<10]) {
				t.Fatalf("stalled read answered with wrong bytes")
			}
			if typ != pData && typ != pStatus {
				t.Fatalf("stalled read answered with type %d", typ)
			}
			t.Logf("stalled read answered with packet type %d", typ)
			typ, body, err = c.recv()
			if err != nil {
				t.Fatal(err)
			}
			if id := binary.BigEndian.Uint32(body); id != cID || typ != pStatus {
				t.Fatalf("answer to %d type %d, want the close's status", id, typ)
			}
		})
	}
}

// TestSessionEndWithStalledQueues: a client drops its connection while
// reads of three handles wait in their readQueues for a stalled grid
// (3 of 5 servers frozen). pkg/sftp's Serve then closes the open handles
// one after the other while holding its lock; no answer can be sent any
// more, so no close may give its queue the CLOSE's grace (2 s each: the
// session took 6 s to end) nor wait for a grid read: the session must
// end within a second (queuedReader.TransferError, readHandle's context).
func TestSessionEndWithStalledQueues(t *testing.T) {
	const handles = 3
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	data := pseudo(71, 24<<20)
	e.put(d, "/s.bin", data)
	conn, c := dialRaw(t, e, "alice", alicePW)
	var hs []string
	for range handles {
		r, err := c.open("/s.bin", fRead, nil)
		if err != nil || r.typ != pHandle {
			t.Fatalf("open: %v %+v", err, r)
		}
		hs = append(hs, r.handle())
	}
	var warm []readReq
	for _, h := range hs {
		warm = append(warm, readReq{h: h, off: 0, n: 32 << 10})
	}
	pipelineReads(t, c, warm) // each handle's stream starts
	freezeServers(t, e, 3)
	time.Sleep(50 * time.Millisecond)
	queued := e.srv.fastQueued.Load()
	for _, h := range hs {
		c.id++
		if err := c.send(pRead, pkt{}.u32(c.id).str(h).u64(9<<20).u32(32<<10)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.fastQueued.Load()-queued < handles {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reads queued", e.srv.fastQueued.Load()-queued, handles)
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	conn.Close() // the client is gone
	for e.srv.sessions.Load() != 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatal("session still open 30 s after the client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("session ended %s after the client left", took)
	if took > time.Second {
		t.Fatalf("session of a departed client took %s to end (%d stalled handles)", took, handles)
	}
}

// TestReadHandleCloseCancelsGridRead: a read of a handle that must come
// from the grid (no stream: the handle was never read at 0) while 3 of 5
// servers are frozen waits for the grid; the handle's Close cancels it,
// so a queue's read (whose stream failed) cannot hold up a close until
// the server timeout (10 s here). The read fails "read handle closed".
func TestReadHandleCloseCancelsGridRead(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.drive("alice")
	e.put(d, "/g.bin", pseudo(72, 8<<20))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := d.Open(ctx, "/g.bin")
	if err != nil {
		t.Fatal(err)
	}
	h := newReadHandle(ctx, f, "/g.bin")
	freezeServers(t, e, 3)
	done := make(chan error, 1)
	go func() {
		_, err := h.ReadAt(make([]byte, 32<<10), 5<<20)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read of a frozen grid returned before the close: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	h.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), errStopped.Error()) {
			t.Fatalf("read after close: %v, want %q", err, errStopped)
		}
		t.Logf("read ended %s after the close", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("the handle's close did not end its grid read within 2 s")
	}
}

// freezeServers freezes the grid's first n storage servers until the
// test's end.
func freezeServers(t *testing.T, e *env, n int) {
	for _, s := range e.grid.Servers[:n] {
		s.Freeze()
	}
	t.Cleanup(func() {
		for _, s := range e.grid.Servers {
			s.Thaw()
		}
	})
}

// answer is one packet a test reads in the background.
type answer struct {
	typ  byte
	id   uint32
	code uint32 // a status answer's code
	at   time.Duration
	err  error
}

// answers reads packets from c until it fails, each stamped with the
// time since start.
func answers(c *rawClient, start time.Time) <-chan answer {
	out := make(chan answer, 64)
	go func() {
		defer close(out)
		for {
			typ, body, err := c.recv()
			if err != nil {
				out <- answer{err: err}
				return
			}
			a := answer{typ: typ, at: time.Since(start)}
			if len(body) >= 4 {
				a.id = binary.BigEndian.Uint32(body)
			}
			if typ == pStatus && len(body) >= 8 {
				a.code = binary.BigEndian.Uint32(body[4:])
			}
			out <- a
		}
	}()
	return out
}

// next is the next answer, failing the test after wait.
func next(t *testing.T, ch <-chan answer, wait time.Duration, what string) answer {
	t.Helper()
	select {
	case a, ok := <-ch:
		if !ok || a.err != nil {
			t.Fatalf("%s: connection failed: %v", what, a.err)
		}
		return a
	case <-time.After(wait):
		t.Fatalf("%s: no answer within %s", what, wait)
	}
	return answer{}
}

// TestCloseBehindGridRead: with 3 of 5 storage servers frozen (no read
// of the grid can finish before server_timeout, 30 s here, the default),
// a READ that needs the grid (a small file, which never streams; a big
// file read away from the stream) and then the handle's CLOSE: the read
// fails ("read handle closed") once the CLOSE's grace (2 s) is over, the
// CLOSE is answered after it, OK, in well under server_timeout; and a
// CLOSE of another handle sent meanwhile is answered at once. Such reads
// ran on pkg/sftp's workers, and pkg/sftp runs a CLOSE (of any handle)
// only after every read on its workers: it waited server_timeout.
func TestCloseBehindGridRead(t *testing.T) {
	cases := []struct {
		name string
		path string
		size int
		at   uint64
	}{
		{name: "random read of a small file", path: "/small.bin", size: 300 << 10, at: 100 << 10},
		{name: "big file read away from the stream", path: "/big.bin", size: 8 << 20, at: 5 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{serverTimeout: 30 * time.Second})
			d := e.drive("alice")
			e.put(d, tc.path, pseudo(91, tc.size))
			e.put(d, "/other.bin", pseudo(92, 100<<10))
			c := rawSession(t, e)
			open := func(p string) string { return mustOpenRead(t, c, p) }
			h, other := open(tc.path), open("/other.bin")
			freezeServers(t, e, 3)
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			ch := answers(c, start)
			send := func(typ byte, body pkt) uint32 {
				c.id++
				if err := c.send(typ, pkt{}.u32(c.id).append(body)); err != nil {
					t.Fatal(err)
				}
				return c.id
			}
			rID := send(pRead, pkt{}.str(h).u64(tc.at).u32(32<<10))
			select {
			case a := <-ch:
				t.Fatalf("read of a frozen grid answered (type %d, code %d) after %s", a.typ, a.code, a.at)
			case <-time.After(300 * time.Millisecond):
			}
			// Another handle's close does not wait for the read.
			otherSent := time.Now()
			oID := send(pClose, pkt{}.str(other))
			a := next(t, ch, 5*time.Second, "close of the other handle")
			if a.id != oID || a.typ != pStatus || a.code != fxOK {
				t.Fatalf("answer %+v, want the other handle's close %d OK", a, oID)
			}
			took := time.Since(otherSent)
			t.Logf("the other handle's close answered after %s", took)
			if took > 1500*time.Millisecond {
				t.Fatalf("the other handle's close took %s behind a read waiting on the grid", took)
			}
			closeSent := time.Now()
			cID := send(pClose, pkt{}.str(h))
			a = next(t, ch, 20*time.Second, "the stalled read")
			if a.id != rID || a.typ != pStatus || a.code != fxFailure {
				t.Fatalf("answer %+v, want the read %d failed", a, rID)
			}
			a = next(t, ch, 5*time.Second, "the close")
			took = time.Since(closeSent)
			if a.id != cID || a.typ != pStatus || a.code != fxOK {
				t.Fatalf("answer %+v, want the close %d OK", a, cID)
			}
			t.Logf("close answered %s after it was sent (grace %s, server_timeout 30 s)", took, closeGrace)
			if took > closeGrace+3*time.Second {
				t.Fatalf("close took %s behind a read waiting on a hung grid", took)
			}
			// The session goes on.
			pID := send(pRealpath, pkt{}.str("."))
			if a := next(t, ch, 5*time.Second, "realpath"); a.id != pID || a.typ != pName {
				t.Fatalf("answer %+v, want realpath %d's name", a, pID)
			}
		})
	}
}

// TestSessionEndCancelsGridReads: a client leaves while its session
// waits on a hung grid (3 of 5 servers frozen, server_timeout 30 s):
// reads that need the grid on two handles, a STAT that must read a
// folder, and a CLOSE behind them. Whether the connection drops or only
// the session's channel ends (its input closed, the connection kept),
// the session's reads are cancelled when its input ends: the session
// ends at once and every goroutine it started is gone within moments,
// not after server_timeout.
func TestSessionEndCancelsGridReads(t *testing.T) {
	cases := []struct {
		name string
		drop bool // the connection drops; else the session's input ends
	}{
		{name: "connection dropped", drop: true},
		{name: "session input closed, connection kept"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{serverTimeout: 30 * time.Second})
			d := e.drive("alice")
			e.put(d, "/small.bin", pseudo(93, 300<<10))
			e.put(d, "/big.bin", pseudo(94, 8<<20))
			conn, err := e.dial("alice", alicePW)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			time.Sleep(100 * time.Millisecond)
			base := goroutinesIn()
			c, in := sftpSubsystem(t, conn)
			hs := []string{mustOpenRead(t, c, "/small.bin"), mustOpenRead(t, c, "/big.bin")}
			freezeServers(t, e, 3)
			time.Sleep(50 * time.Millisecond)
			queued := e.srv.fastQueued.Load()
			send := func(typ byte, body pkt) {
				c.id++
				if err := c.send(typ, pkt{}.u32(c.id).append(body)); err != nil {
					t.Fatal(err)
				}
			}
			send(pRead, pkt{}.str(hs[0]).u64(100<<10).u32(32<<10))
			send(pRead, pkt{}.str(hs[1]).u64(5<<20).u32(32<<10))
			send(pStat, pkt{}.str("/small.bin"))
			send(pClose, pkt{}.str(hs[0]))
			time.Sleep(500 * time.Millisecond)
			if e.srv.sessions.Load() != 1 {
				t.Fatalf("%d sessions open, want 1", e.srv.sessions.Load())
			}
			start := time.Now()
			if tc.drop {
				conn.Close()
			} else {
				in.Close()
			}
			for e.srv.sessions.Load() != 0 {
				if time.Since(start) > 40*time.Second {
					t.Fatal("session still open 40 s after the client left")
				}
				time.Sleep(10 * time.Millisecond)
			}
			ended := time.Since(start)
			for !fewer(goroutinesIn(), base) && time.Since(start) < 40*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			gone := time.Since(start)
			t.Logf("session ended %s after the client left, goroutines back to %v (%v before) after %s", ended, goroutinesIn(), base, gone)
			if ended > 2*time.Second {
				t.Errorf("the session of a departed client took %s to end", ended)
			}
			if now := goroutinesIn(); gone > 3*time.Second {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines %v %s after the client left, %v before its session:\n%s", now, gone, base, buf[:runtime.Stack(buf, true)])
			}
			if n := e.srv.fastQueued.Load() - queued; n != 2 {
				t.Fatalf("%d of 2 reads of the grid went to their handles' queues", n)
			}
		})
	}
}

// goroutineHomes are the code whose goroutines a session starts: this
// frontend's, pkg/sftp's and the grid client's (reads).
var goroutineHomes = []string{"tarn/frontends/sftp.", "github.com/pkg/sftp.", "tarn/host/grid."}

// goroutinesIn counts the goroutines running code of each of
// goroutineHomes (tests' own functions left out).
func goroutinesIn() []int {
	buf := make([]byte, 4<<20)
	n := make([]int, len(goroutineHomes))
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "frontends/sftp.Test") {
			continue
		}
		for i, home := range goroutineHomes {
			if strings.Contains(g, home) {
				n[i]++
			}
		}
	}
	return n
}

// fewer reports whether every count in a is at most the one in b.
func fewer(a, b []int) bool {
	for i := range a {
		if a[i] > b[i] {
			return false
		}
	}
	return true
}

// TestReadAnswersInOrder: answers to the READs of a handle go out in
// the order the READs came, whether the read loop, the handle's queue
// (waiting for the stream, or reading the grid on several goroutines)
// or pkg/sftp answers them. OpenSSH's scp in SFTP mode truncates a
// download at the first READ answered out of order ("highwater"), exit
// status 0: scp -r of a 101 MiB file came back cut at 7-45 MiB about one
// time in four when a READ whose block the stream had was answered
// before one waiting in the queue.
func TestReadAnswersInOrder(t *testing.T) {
	cases := []struct {
		name     string
		size     int
		chunk    uint32
		inFlight int
	}{
		{name: "streamed file, OpenSSH's 64 reads of 255 KiB", size: 24<<20 + 777, chunk: maxData, inFlight: 64},
		{name: "streamed file, 32 KiB reads", size: 6 << 20, chunk: 32 << 10, inFlight: 64},
		{name: "small file read from the grid", size: 700 << 10, chunk: 32 << 10, inFlight: 16},
		// scp -X nrequests=400: past the handle queue's 256 the answers
		// still come in order (review7b: the 257th went to pkg/sftp).
		{name: "400 reads in flight, past the queue's 256", size: 24 << 20, chunk: 32 << 10, inFlight: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			data := pseudo(97, tc.size)
			e.put(e.drive("alice"), "/f.bin", data)
			c := rawSession(t, e)
			h := mustOpenRead(t, c, "/f.bin")
			// OpenSSH's loop: a window of reads in flight, one more sent
			// per answer, until EOF; answers must come oldest first.
			type req struct {
				id  uint32
				off uint64
			}
			var pending []req
			next := uint64(0)
			send := func() {
				c.id++
				pending = append(pending, req{c.id, next})
				if err := c.send(pRead, pkt{}.u32(c.id).str(h).u64(next).u32(tc.chunk)); err != nil {
					t.Fatal(err)
				}
				next += uint64(tc.chunk)
			}
			for range tc.inFlight {
				send()
			}
			got := 0
			eof := false
			for len(pending) > 0 {
				typ, body, err := c.recv()
				if err != nil {
					t.Fatal(err)
				}
				id := binary.BigEndian.Uint32(body)
				want := pending[0]
				if id != want.id {
					t.Fatalf("answer to read %d (type %d) while read %d at %d, sent before it, is not answered: out of order after %d bytes", id, typ, want.id, want.off, got)
				}
				pending = pending[1:]
				switch typ {
				case pData:
					b := body[8:]
					if !bytes.Equal(b, data[want.off:min(uint64(len(data)), want.off+uint64(tc.chunk))]) {
						t.Fatalf("read at %d: %d wrong bytes", want.off, len(b))
					}
					got += len(b)
				case pStatus:
					if code := binary.BigEndian.Uint32(body[4:]); code != fxEOF || want.off < uint64(len(data)) {
						t.Fatalf("read at %d: status %d", want.off, code)
					}
					eof = true
				default:
					t.Fatalf("answer of type %d", typ)
				}
				if !eof {
					send()
				}
			}
			if got != len(data) {
				t.Fatalf("read %d bytes of %d", got, len(data))
			}
			if r, err := c.closeHandle(h); err != nil || r.result() != fxOK {
				t.Fatalf("close: %v %+v", err, r)
			}
		})
	}
}

// mustOpenRead opens p for reading and returns its handle.
func mustOpenRead(t *testing.T, c *rawClient, p string) string {
	t.Helper()
	r, err := c.open(p, fRead, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open %s: %v %+v", p, err, r)
	}
	return r.handle()
}
