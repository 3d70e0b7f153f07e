package sftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recordRW records each Write it gets, slowly (so that a queue above it
// gathers what comes meanwhile), and reads nothing.
type recordRW struct {
	mu     sync.Mutex
	writes [][]byte
	delay  time.Duration
	err    error
}

func (r *recordRW) Read([]byte) (int, error) { return 0, io.EOF }
func (r *recordRW) Close() error             { return nil }
func (r *recordRW) Write(b []byte) (int, error) {
	time.Sleep(r.delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, bytes.Clone(b))
	return len(b), nil
}

// TestSendQueueWholePackets: a sendQueue passes on exactly the bytes
// written, in order, and every write it makes ends on an SFTP packet
// boundary, although each packet comes to it in two writes (header, then
// payload) as pkg/sftp sends them; Flush returns once all is written.
func TestSendQueueWholePackets(t *testing.T) {
	rec := &recordRW{delay: time.Millisecond}
	q := newSendQueue(rec)
	var want []byte
	for i := range 200 {
		payload := pseudo(byte(i), 1+(i*7919)%40000)
		hdr := binary.BigEndian.AppendUint32(nil, uint32(9+len(payload)))
		hdr = append(hdr, fxpData)
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(i))
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(payload)))
		for _, b := range [][]byte{hdr, payload} {
			if _, err := q.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		want = append(append(want, hdr...), payload...)
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	writes := rec.writes
	rec.mu.Unlock()
	if got := bytes.Join(writes, nil); !bytes.Equal(got, want) {
		t.Fatalf("passed on %d bytes, want %d identical", len(got), len(want))
	}
	for i, w := range writes {
		for len(w) > 0 {
			if len(w) < 4 || int(binary.BigEndian.Uint32(w))+4 > len(w) {
				t.Fatalf("write %d of %d ends inside a packet", i, len(writes))
			}
			w = w[4+binary.BigEndian.Uint32(w):]
		}
	}
	if len(writes) >= 200 {
		t.Fatalf("%d writes for 200 packets: nothing was gathered", len(writes))
	}
	q.Close()
	if _, err := q.Write([]byte{1}); !errors.Is(err, errQueueClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestWriteQueueError: a failed write is returned by Flush and every later
// Write.
func TestWriteQueueError(t *testing.T) {
	boom := errors.New("boom")
	rec := &recordRW{err: boom}
	q := newSendQueue(rec)
	q.Write(packet(fxpStatus, pkt{}.u32(1).u32(0).str("").str("")))
	if err := q.Flush(); !errors.Is(err, boom) {
		t.Fatalf("flush: %v, want %v", err, boom)
	}
	if _, err := q.Write([]byte{0, 0, 0, 1, 1}); !errors.Is(err, boom) {
		t.Fatalf("write after the failure: %v, want %v", err, boom)
	}
	q.Close()
}

// TestBatchConn: over real TCP, what is written through a batchConn (many
// writes of any size, from several goroutines in turn, as x/crypto/ssh
// writes under its lock) arrives whole and in order, what was written just
// before Close arrives too, and reads come through intact.
func TestBatchConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(peer)
			return
		}
		peer <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	bc := newBatchConn(raw)
	p := <-peer
	if p == nil {
		t.Fatal("accept failed")
	}
	defer p.Close()

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(p)
		got <- b
	}()
	var want []byte
	var mu sync.Mutex // the order of writes is the order under mu
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				b := pseudo(byte(g*31+i), 1+(i*4099+g)%70000)
				mu.Lock()
				if _, err := bc.Write(b); err != nil {
					mu.Unlock()
					t.Error(err)
					return
				}
				want = append(want, b...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Reads: the peer's bytes come out whole through the large buffer.
	back := pseudo(99, 3<<20)
	go func() { p.Write(back) }()
	in := make([]byte, len(back))
	if _, err := io.ReadFull(bc, in); err != nil || !bytes.Equal(in, back) {
		t.Fatalf("read %v, bytes equal %v", err, bytes.Equal(in, back))
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer got %d bytes, want %d identical", len(b), len(want))
	}
	if _, err := bc.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
}

// gateRW blocks every Write until the test opens the gate.
type gateRW struct {
	recordRW
	gate chan struct{}
}

func (g *gateRW) Write(b []byte) (int, error) {
	<-g.gate
	return g.recordRW.Write(b)
}

// TestSendQueueFullMidPacket: a packet begun just under the queue's limit
// is taken whole although the limit is passed (the queue writes nothing
// until the packet is whole, so waiting for room there would never end).
func TestSendQueueFullMidPacket(t *testing.T) {
	g := &gateRW{gate: make(chan struct{})}
	q := newSendQueue(g)
	defer func() {
		close(g.gate)
		q.Close()
	}()
	// Packets up to just under the limit while the first write is held.
	total := 0
	for total+40000 < queueMax {
		body := make([]byte, 40000-4)
		p := append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
		if _, err := q.Write(p); err != nil {
			t.Fatal(err)
		}
		total += len(p)
	}
	done := make(chan error, 1)
	go func() {
		payload := make([]byte, 64<<10)
		hdr := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
		// Whole packets (of at most pkg/sftp's size) up to 2 bytes under
		// the limit, the last written in two pieces.
		for {
			q.q.mu.Lock()
			room := queueMax - len(q.q.pending) - 2
			q.q.mu.Unlock()
			if room <= 0 {
				break
			}
			n := min(room, 200000)
			if room-n > 0 && room-n < 8 {
				n -= 8
			}
			fill := binary.BigEndian.AppendUint32(nil, uint32(n-4))
			fill = append(fill, make([]byte, n-4)...)
			if _, err := q.Write(fill[:n-1]); err != nil {
				done <- err
				return
			}
			if _, err := q.Write(fill[n-1:]); err != nil {
				done <- err
				return
			}
		}
		if _, err := q.Write(hdr); err != nil {
			done <- err
			return
		}
		_, err := q.Write(payload)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the rest of a packet begun under the limit waited for room")
	}
}
