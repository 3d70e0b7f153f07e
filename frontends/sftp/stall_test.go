package sftp

import (
	"bytes"
	"encoding/binary"
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
			for _, s := range e.grid.Servers[:3] {
				s.Freeze()
			}
			t.Cleanup(func() {
				for _, s := range e.grid.Servers {
					s.Thaw()
				}
			})
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
