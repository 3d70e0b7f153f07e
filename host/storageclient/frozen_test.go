package storageclient

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
)

// freezer is a TCP proxy that can stop forwarding, as a SIGSTOPped server
// looks to its clients: connections stay open, nothing moves.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
	cond   *sync.Cond
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	f.cond = sync.NewCond(&f.mu)
	t.Cleanup(func() { f.thaw(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		f.mu.Lock()
		for f.frozen {
			f.cond.Wait()
		}
		f.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (f *freezer) freeze() { f.mu.Lock(); f.frozen = true; f.mu.Unlock() }
func (f *freezer) thaw()   { f.mu.Lock(); f.frozen = false; f.cond.Broadcast(); f.mu.Unlock() }

func TestFrozenServerTimesOut(t *testing.T) {
	ts := startServer(t, storageserver.Config{}, false)
	a, _ := nodelink.ParseAddr(ts.addr)
	f := newFreezer(t, strings.TrimPrefix(a.Transports[0], "tcp:"))
	a.Transports = []string{"tcp:" + f.ln.Addr().String()}
	// Long enough for the 8 MiB setup upload on a loaded machine.
	const timeout = 2 * time.Second
	c, err := Dial(testCtx(t), tcp, a.String(), newCert(t), Options{GridSecret: ts.secret, CallTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	index := randIndex()
	data := randBytes(8 << 20)
	upload(t, c, index, map[uint32][]byte{0: data}, randBytes(32))
	al, err := c.Allocate(ctx, randIndex(), []uint32{0}, 64<<20, randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	f.freeze()

	tests := []struct {
		name string
		call func() error
	}{
		{"unary", func() error { _, err := c.List(ctx, index); return err }},
		{"read stream", func() error { _, err := c.Read(ctx, index, 0, 0, int64(len(data))); return err }},
		{"write stream", func() error {
			w := al.Writers[0]
			chunk := randBytes(1 << 20)
			for off := int64(0); off < w.Size(); off += int64(len(chunk)) {
				if err := w.WriteAt(ctx, chunk, off); err != nil {
					return err
				}
			}
			return w.Seal(ctx)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call()
			d := time.Since(start)
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("call to a frozen server: %v", err)
			}
			if d > 10*timeout {
				t.Fatalf("call to a frozen server took %s (timeout %s): %v", d, timeout, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want a deadline error", err)
			}
		})
	}
}
