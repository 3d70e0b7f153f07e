package sftp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestReview7bOrderManyInFlight: OpenSSH's scp -X nrequests=N keeps N
// reads in flight; past the queue's 256 the answers must still come
// in order (scp truncates a download at the first one out of order).
func TestReview7bOrderManyInFlight(t *testing.T) {
	const chunk = 32 << 10
	e := newEnv(t, envOptions{})
	data := pseudo(97, 24<<20)
	e.put(e.drive("alice"), "/f.bin", data)
	c := rawSession(t, e)
	h := mustOpenRead(t, c, "/f.bin")
	type req struct {
		id  uint32
		off uint64
	}
	var pending []req
	next := uint64(0)
	send := func() {
		c.id++
		pending = append(pending, req{c.id, next})
		if err := c.send(pRead, pkt{}.u32(c.id).str(h).u64(next).u32(chunk)); err != nil {
			t.Fatal(err)
		}
		next += chunk
	}
	for range 400 {
		send()
	}
	got, eof := 0, false
	for len(pending) > 0 {
		typ, body, err := c.recv()
		if err != nil {
			t.Fatal(err)
		}
		id := binary.BigEndian.Uint32(body)
		want := pending[0]
		if id != want.id {
			t.Fatalf("answer to read %d while read %d at %d is not answered: out of order after %d bytes", id, want.id, want.off, got)
		}
		pending = pending[1:]
		switch typ {
		case pData:
			if !bytes.Equal(body[8:], data[want.off:min(uint64(len(data)), want.off+chunk)]) {
				t.Fatalf("read at %d: wrong bytes", want.off)
			}
			got += len(body[8:])
		case pStatus:
			eof = true
		}
		if !eof {
			send()
		}
	}
	if got != len(data) {
		t.Fatalf("read %d bytes of %d", got, len(data))
	}
}
