package sftp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// rawSession is a raw SFTP client on its own SSH session, for tests that
// pipeline requests (send many, then read the answers in any order).
func rawSession(t *testing.T, e *env) *rawClient {
	t.Helper()
	return tarnClient(t, e, "alice", alicePW)
}

// readReq is one pipelined read: its handle, offset, length and id.
type readReq struct {
	h   string
	off uint64
	n   uint32
	id  uint32
}

// pipelineReads sends every read before reading any answer and returns
// each answer by id: the data, or the status code when the answer is a
// status (data nil).
func pipelineReads(t *testing.T, c *rawClient, reqs []readReq) (map[uint32][]byte, map[uint32]uint32) {
	t.Helper()
	for i := range reqs {
		c.id++
		reqs[i].id = c.id
		if err := c.send(pRead, pkt{}.u32(c.id).str(reqs[i].h).u64(reqs[i].off).u32(reqs[i].n)); err != nil {
			t.Fatal(err)
		}
	}
	data, codes := map[uint32][]byte{}, map[uint32]uint32{}
	for range reqs {
		typ, body, err := c.recv()
		if err != nil {
			t.Fatal(err)
		}
		id := binary.BigEndian.Uint32(body)
		switch typ {
		case pData:
			n := binary.BigEndian.Uint32(body[4:])
			if int(n) != len(body)-8 {
				t.Fatalf("data answer of %d bytes says %d", len(body)-8, n)
			}
			data[id] = body[8:]
		case pStatus:
			codes[id] = binary.BigEndian.Uint32(body[4:])
		default:
			t.Fatalf("answer of type %d to a read", typ)
		}
	}
	return data, codes
}

// TestFastPathReads: reads give the file's bytes at any offset and
// length, on several handles at once and pipelined (answers matched by
// id), a short read at the end, EOF past it; the fast path answered the
// read-ahead stream's.
func TestFastPathReads(t *testing.T) {
	e := newEnv(t, envOptions{})
	size := 3*readBlock + 12345 // big enough for the read-ahead stream
	data := pseudo(41, size)
	e.put(e.drive("alice"), "/r.bin", data)
	c := rawSession(t, e)
	var hs []string
	for range 2 {
		r, err := c.open("/r.bin", fRead, nil)
		if err != nil || r.typ != pHandle {
			t.Fatalf("open: %v %+v", err, r)
		}
		hs = append(hs, r.handle())
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var reqs []readReq
	// Handle 0 from the start in 32 KiB steps (the read-ahead stream
	// starts), handle 1 at random places meanwhile.
	for off := 0; off < size; off += 32 << 10 {
		reqs = append(reqs, readReq{h: hs[0], off: uint64(off), n: 32 << 10})
		if len(reqs)%3 == 0 {
			reqs = append(reqs, readReq{h: hs[1], off: uint64(rng.IntN(size)), n: uint32(1 + rng.IntN(maxData))})
		}
	}
	for range 40 {
		reqs = append(reqs, readReq{h: hs[rng.IntN(2)], off: uint64(rng.IntN(size)), n: uint32(1 + rng.IntN(maxData))})
	}
	reqs = append(reqs,
		readReq{h: hs[1], off: uint64(size - 100), n: 1000},       // short
		readReq{h: hs[0], off: uint64(size), n: 10},               // EOF
		readReq{h: hs[1], off: uint64(size + 5000), n: 10},        // EOF
		readReq{h: hs[0], off: 0, n: maxData + 5000},              // capped at maxData
		readReq{h: hs[1], off: uint64(readBlock - 7), n: 1 << 10}, // across a block
	)
	before, queued := e.srv.fastServed.Load(), e.srv.fastQueued.Load()
	got, codes := pipelineReads(t, c, reqs)
	for _, q := range reqs {
		if q.off >= uint64(size) {
			if codes[q.id] != fxEOF {
				t.Fatalf("read at %d past the end (%d): status %d, want EOF", q.off, size, codes[q.id])
			}
			continue
		}
		want := data[q.off:min(uint64(size), q.off+uint64(min(q.n, maxData)))]
		if b, ok := got[q.id]; !ok || !bytes.Equal(b, want) {
			t.Fatalf("read %d bytes at %d: got %d bytes (status %d), want %d identical", q.n, q.off, len(b), codes[q.id], len(want))
		}
	}
	// The stream's reads (handle 0 from the start) are answered in the
	// loop or by the handle's queue, and so are reads the grid must
	// answer (handle 1's, far from the stream), by the queue
	// (TestFastPathQueuesGridReads): none by pkg/sftp's workers.
	if n := e.srv.fastServed.Load() - before; n != int64(len(reqs)) {
		t.Fatalf("fast path answered %d of %d reads, want all", n, len(reqs))
	}
	if n := e.srv.fastQueued.Load() - queued; n == 0 {
		t.Fatalf("none of %d reads queued, want the grid's at least", len(reqs))
	}
	for _, h := range hs {
		if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
			t.Fatalf("close: %v %+v", err, r)
		}
	}
	// After the close the handle is pkg/sftp's to refuse.
	before = e.srv.fastServed.Load()
	_, codes = pipelineReads(t, c, []readReq{{h: hs[0], n: 10}})
	if len(codes) != 1 || codes[c.id] == 0 || codes[c.id] == fxEOF {
		t.Fatalf("read after close: %v, want a failure status", codes)
	}
	if e.srv.fastServed.Load() != before {
		t.Fatal("the fast path answered a read of a closed handle")
	}
}

// TestFastPathWrites: pipelined writes out of order and of mixed sizes,
// answered OK by the fast path, store exactly the bytes written; a write
// after the close gets pkg/sftp's failure; a read-write handle reads back
// its own writes.
func TestFastPathWrites(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := rawSession(t, e)
	size := 2*streamMin + 77777
	data := pseudo(43, size)
	r, err := c.open("/w.bin", fWrite|fCreat|fTrunc, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open: %v %+v", err, r)
	}
	h := r.handle()
	type piece struct{ off, end int }
	var pieces []piece
	rng := rand.New(rand.NewPCG(9, 10))
	for off := 0; off < size; {
		end := min(size, off+1+rng.IntN(maxData))
		pieces = append(pieces, piece{off, end})
		off = end
	}
	// Mostly in order, with neighbours swapped (as pkg/sftp's clients
	// reorder), then the last piece first.
	for i := 0; i+1 < len(pieces); i += 3 {
		pieces[i], pieces[i+1] = pieces[i+1], pieces[i]
	}
	pieces[0], pieces[len(pieces)-1] = pieces[len(pieces)-1], pieces[0]
	before := e.srv.fastServed.Load()
	first := c.id + 1
	for _, p := range pieces {
		c.id++
		if err := c.send(pWrite, pkt{}.u32(c.id).str(h).u64(uint64(p.off)).str(string(data[p.off:p.end]))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]bool{}
	for range pieces {
		typ, body, err := c.recv()
		if err != nil {
			t.Fatal(err)
		}
		id := binary.BigEndian.Uint32(body)
		if typ != pStatus || binary.BigEndian.Uint32(body[4:]) != 0 || id < first || id > c.id || seen[id] {
			t.Fatalf("answer %d to write %d: %x", typ, id, body)
		}
		seen[id] = true
	}
	if n := e.srv.fastServed.Load() - before; n != int64(len(pieces)) {
		t.Fatalf("fast path answered %d of %d writes", n, len(pieces))
	}
	if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
		t.Fatalf("close: %v %+v", err, r)
	}
	if got, err := e.get(e.drive("alice"), "/w.bin"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (%v), want %d identical", len(got), err, len(data))
	}
	r, err = c.call(pWrite, pkt{}.str(h).u64(0).str("late"))
	if err != nil || r.result() == 0 {
		t.Fatalf("write after close: %v %+v, want a failure", err, r)
	}

	r, err = c.open("/rw.bin", fRead|fWrite|fCreat|fTrunc, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open read-write: %v %+v", err, r)
	}
	h = r.handle()
	small := pseudo(44, 100000)
	for off := 0; off < len(small); off += 30000 {
		r, err := c.call(pWrite, pkt{}.str(h).u64(uint64(off)).str(string(small[off:min(len(small), off+30000)])))
		if err != nil || r.result() != 0 {
			t.Fatalf("write: %v %+v", err, r)
		}
	}
	got, codes := pipelineReads(t, c, []readReq{{h: h, off: 5, n: 70000}, {h: h, off: 99990, n: 100}, {h: h, off: 100000, n: 1}})
	if len(got) != 2 || len(codes) != 1 {
		t.Fatalf("read back: %d data, statuses %v", len(got), codes)
	}
	for id, want := range map[uint32][]byte{c.id - 2: small[5:70005], c.id - 1: small[99990:], c.id: nil} {
		if want == nil {
			if codes[id] != fxEOF {
				t.Fatalf("read at the end: status %d, want EOF", codes[id])
			}
		} else if !bytes.Equal(got[id], want) {
			t.Fatalf("read back %d bytes, want %d identical", len(got[id]), len(want))
		}
	}
	if r, err := c.closeHandle(h); err != nil || r.result() != 0 {
		t.Fatalf("close: %v %+v", err, r)
	}
}

// TestFastPathLeavesOthersToPkgSFTP: a write on a handle opened for
// reading, a read on one opened for writing and a request on a handle
// never opened are not served by the fast path: all fail.
func TestFastPathLeavesOthersToPkgSFTP(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(e.drive("alice"), "/f", []byte("content"))
	c := rawSession(t, e)
	rh, _ := c.open("/f", fRead, nil)
	wh, _ := c.open("/g", fWrite|fCreat|fTrunc, nil)
	if rh.typ != pHandle || wh.typ != pHandle {
		t.Fatalf("open: %+v %+v", rh, wh)
	}
	before := e.srv.fastServed.Load()
	for _, tc := range []struct {
		name string
		typ  byte
		body pkt
	}{
		{"write on a read handle", pWrite, pkt{}.str(rh.handle()).u64(0).str("x")},
		{"read on a write handle", pRead, pkt{}.str(wh.handle()).u64(0).u32(10)},
		{"read on an unknown handle", pRead, pkt{}.str("no-such").u64(0).u32(10)},
		{"write on an unknown handle", pWrite, pkt{}.str("99").u64(0).str("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.call(tc.typ, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			// Every one fails: unknown handles in pkg/sftp, a request of
			// the wrong kind for its handle here (TestWrongKindOfHandle).
			if r.typ != pStatus || r.result() == 0 {
				t.Fatalf("answer %+v, want a failure", r)
			}
		})
	}
	if e.srv.fastServed.Load() != before {
		t.Fatal("the fast path answered requests it must leave to pkg/sftp")
	}
	// The session still works, and the right bytes come back.
	got, _ := pipelineReads(t, c, []readReq{{h: rh.handle(), n: 100}})
	if len(got) != 1 || string(got[c.id]) != "content" {
		t.Fatalf("read after: %v", got)
	}
}

// TestParseDataRequest: the fast path's parser takes exactly the READ and
// WRITE bodies it can answer and refuses anything short or inconsistent.
func TestParseDataRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  byte
		body pkt
		ok   bool
		want dataRequest
	}{
		{"read", fxpRead, pkt{}.u32(3).str("h1").u64(10).u32(99), true, dataRequest{id: 3, handle: "h1", off: 10, n: 99}},
		{"write", fxpWrite, pkt{}.u32(4).str("h").u64(0).str("abc"), true, dataRequest{id: 4, handle: "h", n: 3, data: []byte("abc")}},
		{"write with a short payload", fxpWrite, pkt{}.u32(4).str("h").u64(0).u32(9).append(pkt("abc")), false, dataRequest{}},
		{"handle longer than the body", fxpRead, pkt{}.u32(1).u32(100).append(pkt("ab")), false, dataRequest{}},
		{"no offset", fxpRead, pkt{}.u32(1).str("h"), false, dataRequest{}},
		{"negative offset", fxpRead, pkt{}.u32(1).str("h").u64(1 << 63).u32(1), false, dataRequest{}},
		{"empty", fxpRead, pkt{}, false, dataRequest{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseData(tc.typ, tc.body)
			if ok != tc.ok || (ok && fmt.Sprint(got) != fmt.Sprint(tc.want)) {
				t.Fatalf("parseData = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseData: the parser never panics and what it accepts lies within
// the body.
func FuzzParseData(f *testing.F) {
	f.Add(byte(fxpRead), []byte(pkt{}.u32(3).str("h1").u64(10).u32(99)))
	f.Add(byte(fxpWrite), []byte(pkt{}.u32(4).str("h").u64(0).str("abc")))
	f.Add(byte(fxpClose), []byte(pkt{}.u32(4).str("h")))
	f.Fuzz(func(t *testing.T, typ byte, b []byte) {
		d, ok := parseData(typ, b)
		if ok && (len(d.handle) > len(b) || len(d.data) > len(b) || d.off < 0) {
			t.Fatalf("accepted %+v from %d bytes", d, len(b))
		}
		if h, ok := closeHandle(b); ok && len(h) > len(b) {
			t.Fatalf("close handle %q from %d bytes", h, len(b))
		}
	})
}

// TestFastPathQueuesGridReads: reads of a small file (no read-ahead
// stream: each is read from the grid) go to the handle's queue, not the
// read loop, so a slow grid read never holds up the session's other
// files, nor pkg/sftp's workers, whose CLOSE waits for every read they
// run (TestCloseBehindGridRead); the bytes are right.
func TestFastPathQueuesGridReads(t *testing.T) {
	e := newEnv(t, envOptions{})
	data := pseudo(43, 100<<10)
	e.put(e.drive("alice"), "/small.bin", data)
	c := rawSession(t, e)
	r, err := c.open("/small.bin", fRead, nil)
	if err != nil || r.typ != pHandle {
		t.Fatalf("open: %v %+v", err, r)
	}
	h := r.handle()
	var reqs []readReq
	for off := 0; off < len(data); off += 32 << 10 {
		reqs = append(reqs, readReq{h: h, off: uint64(off), n: 32 << 10})
	}
	before, queued := e.srv.fastServed.Load(), e.srv.fastQueued.Load()
	got, codes := pipelineReads(t, c, reqs)
	for _, q := range reqs {
		want := data[q.off:min(uint64(len(data)), q.off+uint64(q.n))]
		if !bytes.Equal(got[q.id], want) {
			t.Fatalf("read at %d: %d bytes (status %d), want %d identical", q.off, len(got[q.id]), codes[q.id], len(want))
		}
	}
	if n := e.srv.fastQueued.Load() - queued; n != int64(len(reqs)) {
		t.Fatalf("%d of %d grid reads went to the handle's queue", n, len(reqs))
	}
	if n := e.srv.fastServed.Load() - before; n != int64(len(reqs)) {
		t.Fatalf("the queue answered %d of %d grid reads", n, len(reqs))
	}
}
