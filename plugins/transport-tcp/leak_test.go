package transporttcp

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/transport/transporttest"
)

func openFds(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("count open fds of %d: %v", pid, err)
	}
	return len(ents)
}

// TestPluginNoFdLeak: connections made, used, closed and cancelled by the
// hundred leave no descriptor open, neither in the host nor in the plugin.
func TestPluginNoFdLeak(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := transporttest.StartPlugin(t, pluginCmd(), tc.fast)
			ctx := context.Background()
			ln, err := c.Listen(ctx, "tcp:127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					a, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						io.Copy(io.Discard, a)
						a.Close()
					}()
				}
			}()
			cycle := func(n int) {
				for range n {
					d, err := c.Dial(ctx, ln.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					d.Write([]byte("x"))
					d.Close()
				}
				for range n {
					cctx, cancel := context.WithCancel(ctx)
					go func() { time.Sleep(200 * time.Microsecond); cancel() }()
					if d, err := c.Dial(cctx, ln.Addr().String()); err == nil {
						d.Close()
					}
					cancel()
				}
			}
			cycle(10) // warm up: gRPC streams, goroutines, epoll
			time.Sleep(200 * time.Millisecond)
			hostBase, plugBase := openFds(t, os.Getpid()), openFds(t, p.Pid)
			cycle(200)
			var host, plug int
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				host, plug = openFds(t, os.Getpid()), openFds(t, p.Pid)
				if host <= hostBase+2 && plug <= plugBase+2 {
					break
				}
			}
			if host > hostBase+2 || plug > plugBase+2 {
				t.Errorf("after 400 connections: host has %d fds (was %d), plugin %d (was %d)", host, hostBase, plug, plugBase)
			}
			ln.Close()
		})
	}
}
