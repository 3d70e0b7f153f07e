package sftp

import (
	"bytes"
	"context"
	"encoding/binary"
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
		{name: "read inside the read-ahead window", warm: true, at: 9 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			d := e.drive("alice")
			stalled, other := pseudo(51, 24<<20), pseudo(52, 3<<20)
			e.put(d, "/stalled.bin", stalled)
			e.put(d, "/other.bin", other)
			c := rawSession(t, e)
			open := func(p string) string {
				r, err := c.open(p, fRead, nil)
				if err != nil || r.typ != pHandle {
					t.Fatalf("open %s: %v %+v", p, err, r)
				}
				return r.handle()
			}
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
