package testgrid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/testgrid"
	"github.com/tarnfs/tarn/sdk/storage"
)

func dial(t *testing.T, g *testgrid.Grid, s *testgrid.Server, timeout time.Duration) *storageclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := storageclient.Dial(ctx, g.Transport, s.Addr, g.ClientCert(), storageclient.Options{GridSecret: g.Secret, CallTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func put(t *testing.T, c *storageclient.Client, ref storage.Ref, data []byte) {
	t.Helper()
	ctx := context.Background()
	a, err := c.Allocate(ctx, ref.Index, []uint32{ref.Num}, int64(len(data)), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	w := a.Writers[ref.Num]
	if err := w.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestServerLifecycle(t *testing.T) {
	g := testgrid.New(t, 2, nil)
	if len(g.Servers) != 2 || len(g.Source()) != 2 || g.Servers[0].Addr == g.Servers[1].Addr {
		t.Fatalf("servers: %v", g.Addrs())
	}
	s := g.Servers[0]
	c := dial(t, g, s, 500*time.Millisecond)
	ref := storage.Ref{Index: [16]byte{1, 2, 3}, Num: 4}
	put(t, c, ref, []byte("hello share"))
	if h := g.Holders(ref.Index); len(h[4]) != 1 || h[4][0] != 0 {
		t.Fatalf("holders: %v", h)
	}
	if n := s.Backend.Counts(); n.Creates != 1 || n.Seals != 1 || n.BytesWritten != 11 {
		t.Fatalf("counts: %+v", n)
	}

	t.Run("freeze makes requests hang until the timeout", func(t *testing.T) {
		s.Freeze()
		start := time.Now()
		_, err := c.List(context.Background(), ref.Index)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("list on a frozen server: %v, want a timeout", err)
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("frozen server answered after %s", d)
		}
		s.Thaw()
		if _, err := c.List(context.Background(), ref.Index); err != nil {
			t.Fatalf("list after thaw: %v", err)
		}
	})

	t.Run("corrupt flips a byte, others stay", func(t *testing.T) {
		if err := s.Backend.Corrupt(ref, 0, 0x20); err != nil {
			t.Fatal(err)
		}
		b, err := c.Read(context.Background(), ref.Index, ref.Num, 0, 11)
		if err != nil || string(b) != "Hello share" {
			t.Fatalf("read after corrupt: %q, %v", b, err)
		}
		if err := s.Backend.Corrupt(ref, 99, 1); err == nil {
			t.Fatal("corrupt past the end succeeded")
		}
	})

	t.Run("restart keeps address and shares", func(t *testing.T) {
		addr := s.Addr
		s.Stop()
		if s.Running() {
			t.Fatal("running after stop")
		}
		if _, err := c.List(context.Background(), ref.Index); err == nil {
			t.Fatal("list on a stopped server succeeded")
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		if s.Addr != addr {
			t.Fatalf("address changed: %s -> %s", addr, s.Addr)
		}
		c2 := dial(t, g, s, time.Second)
		got, err := c2.List(context.Background(), ref.Index)
		if err != nil || len(got) != 1 || got[0].Num != 4 {
			t.Fatalf("list after restart: %v, %v", got, err)
		}
	})

	t.Run("delete share", func(t *testing.T) {
		if err := s.Backend.DeleteShare(ref); err != nil {
			t.Fatal(err)
		}
		if h := g.Holders(ref.Index); len(h) != 0 {
			t.Fatalf("holders after delete: %v", h)
		}
	})
}
