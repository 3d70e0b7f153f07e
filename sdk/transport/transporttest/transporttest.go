// Package transporttest is the conformance suite of the transport plugin
// contract. Every transport, built in or third party, in process or behind
// a plugin process on either data path, runs the same Run:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T) transport.Transport { return mytransport.New() }, "my:127.0.0.1:0")
//	}
//
// StartPlugin starts a plugin process the way the host does, so a plugin's
// own tests can run Run over the real process too.
package transporttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/tarnfs/tarn/sdk/transport"
)

// prompt is how long an operation that must fail or finish promptly may
// take.
const prompt = 5 * time.Second

// Run checks newTransport against the transport contract. listenAddr is an
// address in the transport's syntax that asks for a port chosen by the
// system (e.g. "tcp:127.0.0.1:0"); the suite listens on it many times.
func Run(t *testing.T, newTransport func(t *testing.T) transport.Transport, listenAddr string) {
	t.Run("ListenAddr", func(t *testing.T) { testListenAddr(t, newTransport(t), listenAddr) })
	t.Run("SmallBothWays", func(t *testing.T) { testBothWays(t, newTransport(t), listenAddr, 100) })
	t.Run("LargeBothWays", func(t *testing.T) { testBothWays(t, newTransport(t), listenAddr, 8<<20) })
	t.Run("ManyConns", func(t *testing.T) { testManyConns(t, newTransport(t), listenAddr, 32, 256<<10) })
	t.Run("CloseDeliversWritten", func(t *testing.T) { testCloseDelivers(t, newTransport(t), listenAddr) })
	t.Run("PeerGone", func(t *testing.T) { testPeerGone(t, newTransport(t), listenAddr) })
	t.Run("HalfClose", func(t *testing.T) { testHalfClose(t, newTransport(t), listenAddr) })
	t.Run("ConnDialer", func(t *testing.T) { testConn(t, newTransport(t), listenAddr, false) })
	t.Run("ConnAcceptor", func(t *testing.T) { testConn(t, newTransport(t), listenAddr, true) })
	t.Run("TLS", func(t *testing.T) { testTLS(t, newTransport(t), listenAddr) })
	t.Run("CloseUnblocksAccept", func(t *testing.T) { testCloseUnblocksAccept(t, newTransport(t), listenAddr) })
	t.Run("DialClosedPort", func(t *testing.T) { testDialClosed(t, newTransport(t), listenAddr) })
	t.Run("BadAddress", func(t *testing.T) { testBadAddress(t, newTransport(t), listenAddr) })
	t.Run("DialContext", func(t *testing.T) { testDialContext(t, newTransport(t), listenAddr) })
}

func listen(t *testing.T, tr transport.Transport, addr string) net.Listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	ln, err := tr.Listen(ctx, addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, tr transport.Transport, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	c, err := tr.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pair dials ln and returns the dialed and the accepted end.
func pair(t *testing.T, tr transport.Transport, ln net.Listener) (dialed, accepted net.Conn, err error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	d, err := tr.Dial(ctx, ln.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", ln.Addr(), err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			d.Close()
			return nil, nil, fmt.Errorf("accept on %s: %w", ln.Addr(), r.err)
		}
		return d, r.c, nil
	case <-time.After(prompt):
		d.Close()
		return nil, nil, fmt.Errorf("accept on %s: no connection after %v", ln.Addr(), prompt)
	}
}

func mustPair(t *testing.T, tr transport.Transport, ln net.Listener) (net.Conn, net.Conn) {
	t.Helper()
	d, a, err := pair(t, tr, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

func testListenAddr(t *testing.T, tr transport.Transport, listenAddr string) {
	ctx := context.Background()
	info, err := tr.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	scheme, _ := transport.Scheme(listenAddr)
	found := false
	for _, s := range info.Schemes {
		found = found || s == scheme
	}
	if !found {
		t.Errorf("info schemes %q do not include %q of the listen address", info.Schemes, scheme)
	}
	ln := listen(t, tr, listenAddr)
	a := ln.Addr().String()
	if !strings.HasPrefix(a, scheme+":") {
		t.Errorf("listener address %q does not start with %q", a, scheme+":")
	}
	if a == listenAddr {
		t.Errorf("listener address %q still asks for a system-chosen port", a)
	}
	// Two listeners on port 0 get two addresses.
	if b := listen(t, tr, listenAddr).Addr().String(); a == b {
		t.Errorf("two listeners share the address %q", a)
	}
	d, acc := mustPair(t, tr, ln)
	if d.RemoteAddr() == nil || acc.LocalAddr() == nil || d.LocalAddr() == nil || acc.RemoteAddr() == nil {
		t.Errorf("connection without addresses: dialed %v->%v, accepted %v<-%v",
			d.LocalAddr(), d.RemoteAddr(), acc.LocalAddr(), acc.RemoteAddr())
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// testBothWays sends size random bytes each way at once on one
// connection and checks what arrived.
func testBothWays(t *testing.T, tr transport.Transport, listenAddr string, size int) {
	ln := listen(t, tr, listenAddr)
	d, a := mustPair(t, tr, ln)
	deadline := time.Now().Add(time.Minute)
	d.SetDeadline(deadline)
	a.SetDeadline(deadline)
	up, down := random(t, size), random(t, size)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	send := func(c net.Conn, b []byte, name string) {
		defer wg.Done()
		if _, err := c.Write(b); err != nil {
			errs <- fmt.Errorf("write %s: %w", name, err)
		}
	}
	recv := func(c net.Conn, want []byte, name string) {
		defer wg.Done()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			errs <- fmt.Errorf("read %s: %w", name, err)
		} else if !bytes.Equal(got, want) {
			errs <- fmt.Errorf("%s: %d bytes arrived changed", name, size)
		}
	}
	wg.Add(4)
	go send(d, up, "up")
	go recv(a, up, "up")
	go send(a, down, "down")
	go recv(d, down, "down")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testManyConns runs conns connections at once against an echo server;
// each writes size random bytes while reading them back.
func testManyConns(t *testing.T, tr transport.Transport, listenAddr string, conns, size int) {
	ln := listen(t, tr, listenAddr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				io.Copy(c, c)
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), prompt)
			defer cancel()
			c, err := tr.Dial(ctx, ln.Addr().String())
			if err != nil {
				errs <- fmt.Errorf("conn %d: dial: %w", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			want := random(t, size)
			go c.Write(want)
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("conn %d: read echo: %w", i, err)
			} else if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("conn %d: echo of %d bytes differs", i, size)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testCloseDelivers: bytes written just before Close still reach the peer,
// followed by EOF.
func testCloseDelivers(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	for _, tc := range []struct {
		name   string
		closer func(d, a net.Conn) (w, r net.Conn)
	}{
		{"dialer closes", func(d, a net.Conn) (net.Conn, net.Conn) { return d, a }},
		{"acceptor closes", func(d, a net.Conn) (net.Conn, net.Conn) { return a, d }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, r := tc.closer(mustPair(t, tr, ln))
			want := random(t, 1<<20)
			go func() {
				w.Write(want)
				w.Close()
			}()
			r.SetReadDeadline(time.Now().Add(time.Minute))
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read until EOF: %v (after %d bytes)", err, len(got))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
			}
		})
	}
}

// testPeerGone: once the peer closed, Read gives EOF and writing soon
// fails, on either end, so a host notices a dead link.
func testPeerGone(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	for _, tc := range []struct {
		name string
		pick func(d, a net.Conn) (closer, survivor net.Conn)
	}{
		{"acceptor closes", func(d, a net.Conn) (net.Conn, net.Conn) { return a, d }},
		{"dialer closes", func(d, a net.Conn) (net.Conn, net.Conn) { return d, a }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gone, c := tc.pick(mustPair(t, tr, ln))
			gone.Close()
			c.SetDeadline(time.Now().Add(prompt))
			if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("read after the peer closed: %d, %v; want 0, EOF", n, err)
			}
			buf := make([]byte, 1024)
			for start := time.Now(); ; {
				if _, err := c.Write(buf); err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("writes to a closed peer still accepted after %v", time.Since(start))
					}
					break
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

type closeWriter interface{ CloseWrite() error }

// testHalfClose: after CloseWrite the peer reads EOF and can still answer.
func testHalfClose(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	d, a := mustPair(t, tr, ln)
	cw, ok := d.(closeWriter)
	if !ok {
		t.Skipf("%T cannot half-close", d)
	}
	deadline := time.Now().Add(30 * time.Second)
	d.SetDeadline(deadline)
	a.SetDeadline(deadline)
	if _, err := d.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(a)
	if err != nil || string(got) != "question" {
		t.Fatalf("peer read %q, %v; want %q then EOF", got, err, "question")
	}
	if _, err := a.Write([]byte("answer")); err != nil {
		t.Fatalf("answer after half-close: %v", err)
	}
	a.Close()
	got, err = io.ReadAll(d)
	if err != nil || string(got) != "answer" {
		t.Fatalf("half-closed side read %q, %v; want %q then EOF", got, err, "answer")
	}
}

// testConn runs x/net/nettest's net.Conn behaviour suite (deadlines,
// concurrent calls, Close unblocking) on the dialed or the accepted end.
func testConn(t *testing.T, tr transport.Transport, listenAddr string, acceptedFirst bool) {
	ln := listen(t, tr, listenAddr)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		d, a, err := pair(t, tr, ln)
		if err != nil {
			return nil, nil, nil, err
		}
		stop = func() { d.Close(); a.Close() }
		if acceptedFirst {
			return a, d, stop, nil
		}
		return d, a, stop, nil
	})
}

func testCloseUnblocksAccept(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			c, err := ln.Accept()
			if c != nil {
				c.Close()
			}
			errc <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := ln.Close(); err != nil {
		t.Errorf("close listener: %v", err)
	}
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("accept after close: %v, want net.ErrClosed", err)
			}
		case <-time.After(prompt):
			t.Fatalf("accept still blocked %v after close", time.Since(start))
		}
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept on a closed listener: %v, want net.ErrClosed", err)
	}
	// The address is free again: nothing answers there.
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	if c, err := tr.Dial(ctx, ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("dial %s after its listener closed succeeded", ln.Addr())
	}
}

func testDialClosed(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*prompt)
	defer cancel()
	start := time.Now()
	c, err := tr.Dial(ctx, addr)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s with nothing listening succeeded", addr)
	}
	if took := time.Since(start); took > prompt {
		t.Errorf("dial %s failed only after %v: %v", addr, took, err)
	}
	if errors.Is(err, transport.ErrBadAddress) {
		t.Errorf("dial %s: a closed port is not a bad address: %v", addr, err)
	}
}

// testBadAddress: malformed addresses and addresses of another scheme are
// refused by both Listen and Dial with transport.ErrBadAddress.
func testBadAddress(t *testing.T, tr transport.Transport, listenAddr string) {
	scheme, _ := transport.Scheme(listenAddr)
	for _, tc := range []struct{ name, addr string }{
		{"empty", ""},
		{"no scheme", "nocolon"},
		{"scheme only", scheme + ":"},
		{"control bytes", scheme + ":\x00\x01"},
		{"other scheme", "zz-not-" + scheme + ":" + strings.TrimPrefix(listenAddr, scheme+":")},
		{"long", scheme + ":" + strings.Repeat("a", 70000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), prompt)
			defer cancel()
			if c, err := tr.Dial(ctx, tc.addr); !errors.Is(err, transport.ErrBadAddress) {
				if c != nil {
					c.Close()
				}
				t.Errorf("dial %.40q: %v, want transport.ErrBadAddress", tc.addr, err)
			}
			if ln, err := tr.Listen(ctx, tc.addr); !errors.Is(err, transport.ErrBadAddress) {
				if ln != nil {
					ln.Close()
				}
				t.Errorf("listen on %.40q: %v, want transport.ErrBadAddress", tc.addr, err)
			}
		})
	}
}

func testDialContext(t *testing.T, tr transport.Transport, listenAddr string) {
	ln := listen(t, tr, listenAddr)
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			c, err := tr.Dial(ctx, ln.Addr().String())
			if err == nil {
				c.Close()
				t.Fatal("dial with a dead context succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("dial: %v, want %v", err, tc.want)
			}
			if took := time.Since(start); took > prompt {
				t.Errorf("dial with a dead context took %v", took)
			}
		})
	}
	// A dial cut short while in flight returns promptly; whether it
	// connected first is a race, but a conn it returns must work.
	t.Run("cancelled in flight", func(t *testing.T) {
		for range 20 {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(time.Millisecond); cancel() }()
			start := time.Now()
			c, err := tr.Dial(ctx, ln.Addr().String())
			if took := time.Since(start); took > prompt {
				t.Fatalf("dial cancelled in flight returned after %v", took)
			}
			if err == nil {
				c.Close()
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("dial cancelled in flight: %v, want context.Canceled", err)
			}
			cancel()
		}
	})
}
