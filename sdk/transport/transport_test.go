package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/sdk/transport"
	"github.com/tarnfs/tarn/sdk/transport/transporttest"
)

// hiddenFd is a TCP transport under the scheme "plain" whose connections
// hide their file descriptor, as a transport with user-space connections
// (a SOCKS client, a test shaper) would: the plugin must then carry them
// on the stream path even when the host offered the fd channel.
type hiddenFd struct{}

type opaqueConn struct{ net.Conn } // no File method

type opaqueListener struct {
	net.Listener
	addr transport.Addr
}

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

func (l opaqueListener) Addr() net.Addr { return l.addr }

func (hiddenFd) Info(context.Context) (transport.Info, error) {
	return transport.Info{Name: "plain", Version: "0", Schemes: []string{"plain"}}, nil
}

func hostPort(addr string) (string, error) {
	rest, ok := strings.CutPrefix(addr, "plain:")
	if !ok || len(rest) > 300 {
		return "", fmt.Errorf("plain address %.40q: %w", addr, transport.ErrBadAddress)
	}
	if _, _, err := net.SplitHostPort(rest); err != nil || strings.ContainsAny(rest, "\x00\x01") {
		return "", fmt.Errorf("plain address %.40q: %w", addr, transport.ErrBadAddress)
	}
	return rest, nil
}

func (hiddenFd) Listen(ctx context.Context, addr string) (net.Listener, error) {
	hp, err := hostPort(addr)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", hp)
	if err != nil {
		return nil, err
	}
	return opaqueListener{ln, transport.Addr{Net: "plain", Str: "plain:" + ln.Addr().String()}}, nil
}

func (hiddenFd) Dial(ctx context.Context, addr string) (net.Conn, error) {
	hp, err := hostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", hp)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return opaqueConn{c}, nil
}

const envServe = "TARN_TEST_SERVE_TRANSPORT_HIDDENFD"

func TestMain(m *testing.M) {
	if os.Getenv(envServe) == "1" {
		transport.Serve(hiddenFd{})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func pluginCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServe+"=1")
	return cmd
}

// TestConnWithoutFd: with the fd channel offered, connections without a
// descriptor still pass the whole suite, carried on the stream path.
func TestConnWithoutFd(t *testing.T) {
	c, _ := transporttest.StartPlugin(t, pluginCmd(), true)
	transporttest.Run(t, func(t *testing.T) transport.Transport { return c }, "plain:127.0.0.1:0")
	ln, err := c.Listen(context.Background(), "plain:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := c.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok := d.(*net.TCPConn); ok {
		t.Fatal("a connection without a descriptor came back as a socket")
	}
}

// TestSettings: a transport without settings takes none.
func TestSettings(t *testing.T) {
	c, _ := transporttest.StartPlugin(t, pluginCmd(), false)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		settings string
		ok       bool
	}{
		{"empty object", `{}`, true},
		{"null", `null`, true},
		{"nothing", ``, true},
		{"a setting", `{"proxy":"x"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Configure(ctx, []byte(tc.settings))
			if (err == nil) != tc.ok {
				t.Fatalf("configure %q: %v, want ok=%v", tc.settings, err, tc.ok)
			}
		})
	}
}

// TestInfo: what the plugin says of itself arrives whole.
func TestInfo(t *testing.T) {
	c, _ := transporttest.StartPlugin(t, pluginCmd(), true)
	in, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "plain" || in.Version != "0" || len(in.Schemes) != 1 || in.Schemes[0] != "plain" {
		t.Fatalf("info = %+v", in)
	}
	if c.FdError() != "" {
		t.Errorf("fd channel error %q with the channel offered", c.FdError())
	}
}

func TestScheme(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcp:1.2.3.4:5", "tcp"},
		{"tor:abc.onion:80", "tor"},
		{"", ""},
		{":x", ""},
		{"nocolon", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := transport.Scheme(tc.in)
			if tc.want == "" {
				if !errors.Is(err, transport.ErrBadAddress) {
					t.Fatalf("Scheme(%q) = %q, %v; want ErrBadAddress", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Scheme(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzScheme(f *testing.F) {
	for _, s := range []string{"tcp:1.2.3.4:5", "", ":", "a:", "nocolon"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := transport.Scheme(s)
		if err != nil {
			if !errors.Is(err, transport.ErrBadAddress) {
				t.Fatalf("Scheme(%q): %v is not ErrBadAddress", s, err)
			}
			return
		}
		if got == "" || strings.Contains(got, ":") || !strings.HasPrefix(s, got+":") {
			t.Fatalf("Scheme(%q) = %q", s, got)
		}
	})
}
