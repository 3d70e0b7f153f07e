package transporttcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tarnfs/tarn/internal/proctest"
	"github.com/tarnfs/tarn/sdk/transport"
	"github.com/tarnfs/tarn/sdk/transport/transporttest"
)

// envServe makes the test binary serve the TCP transport as a plugin.
const envServe = "TARN_TEST_SERVE_TRANSPORT_TCP"

func TestMain(m *testing.M) {
	if os.Getenv(envServe) == "1" {
		Serve()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func pluginCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServe+"=1")
	return cmd
}

// TestPluginConformance runs the whole suite over a real plugin process,
// with sockets handed over (fast) and with bytes over gRPC (fallback).
func TestPluginConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := transporttest.StartPlugin(t, pluginCmd(), tc.fast)
			transporttest.Run(t, func(t *testing.T) transport.Transport { return c }, "tcp:127.0.0.1:0")
		})
	}
}

// TestPluginFastPathConnsAreSockets: on the fast path the host holds the
// real socket (a *net.TCPConn), so its bytes never pass the plugin.
func TestPluginFastPathConnsAreSockets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fast     bool
		isSocket bool
	}{{"fast", true, true}, {"fallback", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := transporttest.StartPlugin(t, pluginCmd(), tc.fast)
			ctx := context.Background()
			ln, err := c.Listen(ctx, "tcp:127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				if a, err := ln.Accept(); err == nil {
					_, sock := a.(*net.TCPConn)
					a.Write([]byte{map[bool]byte{false: 0, true: 1}[sock]})
					a.Close()
				}
			}()
			d, err := c.Dial(ctx, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			_, sock := d.(*net.TCPConn)
			b, err := io.ReadAll(d)
			if err != nil || len(b) != 1 {
				t.Fatalf("read accepted side's report: %q, %v", b, err)
			}
			if sock != tc.isSocket || (b[0] == 1) != tc.isSocket {
				t.Fatalf("dialed conn is %T, accepted is a socket: %v; want sockets: %v", d, b[0] == 1, tc.isSocket)
			}
		})
	}
}

// TestPluginKilled: after kill -9 of the plugin process, connections handed
// over as sockets keep working both ways, while new calls fail promptly.
// On the fallback path the plugin held the connections, so they break.
func TestPluginKilled(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fast         bool
		connsSurvive bool
	}{{"fast", true, true}, {"fallback", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := transporttest.StartPlugin(t, pluginCmd(), tc.fast)
			ctx := context.Background()
			// The far end is in this process, outside the plugin.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			echo := make(chan error, 1)
			go func() {
				a, err := ln.Accept()
				if err != nil {
					echo <- err
					return
				}
				defer a.Close()
				_, err = io.Copy(a, a)
				echo <- err
			}()
			d, err := c.Dial(ctx, "tcp:"+ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			pl, err := c.Listen(ctx, "tcp:127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			acceptErr := make(chan error, 1)
			go func() {
				a, err := pl.Accept()
				if a != nil {
					a.Close()
				}
				acceptErr <- err
			}()
			roundTrip := func(msg string) error {
				d.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := d.Write([]byte(msg)); err != nil {
					return err
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(d, got); err != nil {
					return err
				}
				if !bytes.Equal(got, []byte(msg)) {
					return errors.New("echo differs")
				}
				return nil
			}
			if err := roundTrip("before"); err != nil {
				t.Fatalf("echo before the kill: %v", err)
			}

			if err := proctest.Kill(p.Pid); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !p.Exited() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !p.Exited() {
				t.Fatal("plugin process still running 5s after SIGKILL")
			}

			err = roundTrip("after the plugin died")
			switch {
			case tc.connsSurvive && err != nil:
				t.Errorf("fd-passed conn broke when the plugin died: %v", err)
			case !tc.connsSurvive && err == nil:
				t.Errorf("fallback conn still echoes with its plugin dead")
			}

			// A blocked Accept and new calls fail promptly.
			select {
			case err := <-acceptErr:
				if !errors.Is(err, transport.ErrPluginGone) {
					t.Errorf("accept on a dead plugin: %v, want transport.ErrPluginGone", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("accept still blocked 5s after the plugin died")
			}
			for _, call := range []struct {
				name string
				do   func(context.Context) error
			}{
				{"dial", func(ctx context.Context) error {
					c, err := c.Dial(ctx, "tcp:"+ln.Addr().String())
					if c != nil {
						c.Close()
					}
					return err
				}},
				{"listen", func(ctx context.Context) error {
					l, err := c.Listen(ctx, "tcp:127.0.0.1:0")
					if l != nil {
						l.Close()
					}
					return err
				}},
				{"info", func(ctx context.Context) error { _, err := c.Info(ctx); return err }},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				start := time.Now()
				err := call.do(ctx)
				cancel()
				if err == nil {
					t.Errorf("%s on a dead plugin succeeded", call.name)
				} else if took := time.Since(start); took > 2*time.Second {
					t.Errorf("%s on a dead plugin failed only after %v: %v", call.name, took, err)
				} else if !errors.Is(err, transport.ErrPluginGone) {
					t.Errorf("%s on a dead plugin: %v, want transport.ErrPluginGone", call.name, err)
				}
			}
		})
	}
}
