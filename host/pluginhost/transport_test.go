package pluginhost_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/pluginhost"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// echo serves l until it is closed: each connection gets its bytes back.
func echo(l net.Listener) chan error {
	done := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return done
}

func roundTrip(ctx context.Context, tr *pluginhost.Transport, addr, msg string) error {
	c, err := tr.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return exchange(c, msg)
}

func exchange(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo returned other bytes")
	}
	return nil
}

// A transport plugin killed with SIGKILL: a listener from before the kill
// listens again on the same address, so a server keeps accepting, and a
// dial after the kill works. On the fast path a connection made before the
// kill is the host's own socket and survives it.
func TestTransportKilledListenerComesBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"fast path", true}, {"grpc fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, pluginhost.Options{}, pluginhost.Spec{Kind: pluginkit.KindTransport, Name: "tcp", FastPath: tc.fast})
			tr, err := h.Transport()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			l, err := tr.Listen(ctx, "tcp:127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := echo(l)
			addr := l.Addr().String()
			if err := roundTrip(ctx, tr, addr, "before"); err != nil {
				t.Fatalf("before the kill: %v", err)
			}
			early, err := tr.Dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer early.Close()
			// An exchange shows the server side was accepted and handed to
			// the host too, before the kill.
			if err := exchange(early, "warm"); err != nil {
				t.Fatal(err)
			}

			pid := h.Pid(pluginkit.KindTransport)
			kill9(t, pid)
			for !gone(pid) {
				time.Sleep(10 * time.Millisecond)
			}
			if tc.fast {
				if err := exchange(early, "still here"); err != nil {
					t.Errorf("a connection the host owned broke with the plugin: %v", err)
				}
			}

			// The listener comes back on its own; a dial restarts nothing
			// more (or restarts the plugin if it is first).
			deadline := time.Now().Add(10 * time.Second)
			for {
				err = roundTrip(ctx, tr, addr, "after")
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no echo on %s after the kill: %v", addr, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if l.Addr().String() != addr {
				t.Errorf("listener address moved from %s to %s", addr, l.Addr())
			}
			if st := h.List()[0]; st.Restarts != 1 || st.Pid == pid {
				t.Errorf("status %+v: want 1 restart and a new pid", st)
			}

			l.Close()
			select {
			case err := <-served:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("accept after close: %v, want net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("accept did not return after close")
			}
		})
	}
}

// Closing the host ends a blocked Accept instead of re-listening forever.
func TestTransportAcceptEndsWithHost(t *testing.T) {
	h, err := pluginhost.New(context.Background(), pluginhost.Options{}, pluginhost.Spec{Kind: pluginkit.KindTransport, Name: "tcp", FastPath: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tr, _ := h.Transport()
	l, err := tr.Listen(context.Background(), "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := echo(l)
	time.Sleep(50 * time.Millisecond)
	h.Close()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("accept after the host closed: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("accept still blocked 10s after the host closed")
	}
	if _, err := tr.Dial(context.Background(), l.Addr().String()); !errors.Is(err, pluginhost.ErrClosed) {
		t.Errorf("dial after close: %v, want ErrClosed", err)
	}
}
