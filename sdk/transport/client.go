package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/transport/transportpb"
)

// Addr is a net.Addr in a transport's own syntax ("tcp:host:port").
type Addr struct {
	Net string // the scheme, e.g. "tcp"
	Str string // the whole address, e.g. "tcp:127.0.0.1:3456"
}

func (a Addr) Network() string { return a.Net }
func (a Addr) String() string  { return a.Str }

// Client is the host's view of a transport plugin process: a Transport
// (and pluginkit.Configurer) whose calls are RPCs. Connections come over
// the fd channel when both sides hold one (FastPath), otherwise as
// streams.
type Client struct {
	rpc     transportpb.TransportClient
	mailbox *dataplane.Mailbox // nil unless the plugin can hand over fds
	info    *transportpb.InfoResponse
	next    atomic.Uint64 // claims and fd ids, chosen by the host
}

var (
	_ Transport            = (*Client)(nil)
	_ pluginkit.Configurer = (*Client)(nil)
)

// NewClient asks the plugin what it is and whether it holds the fd channel.
// mailbox is the host's side of that channel, or nil for the stream-only
// path.
func NewClient(ctx context.Context, rpc transportpb.TransportClient, mailbox *dataplane.Mailbox) (*Client, error) {
	info, err := rpc.Info(ctx, &transportpb.InfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("transport plugin info: %w", fromStatus(err))
	}
	if info.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("transport plugin speaks protocol v%d, this tarn speaks v%d", info.Protocol, ProtocolVersion)
	}
	c := &Client{rpc: rpc, info: info}
	if mailbox != nil && info.FdPassing {
		c.mailbox = mailbox
	}
	return c, nil
}

// FastPath reports whether connections are handed over as sockets.
func (c *Client) FastPath() bool { return c.mailbox != nil }

// FdError is why the plugin could not use an offered fd channel, if so.
func (c *Client) FdError() string { return c.info.FdError }

func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.rpc.Info(ctx, &transportpb.InfoRequest{})
	if err != nil {
		return Info{}, fmt.Errorf("transport plugin info: %w", fromStatus(err))
	}
	return Info{Name: r.Name, Version: r.Version, Schemes: r.Schemes}, nil
}

// Configure hands the plugin its settings (a JSON object).
func (c *Client) Configure(ctx context.Context, settingsJSON []byte) error {
	if _, err := c.rpc.Configure(ctx, &transportpb.ConfigureRequest{SettingsJson: settingsJSON}); err != nil {
		return fmt.Errorf("configure transport plugin: %w", fromStatus(err))
	}
	return nil
}

// ids gives the claim of a new connection and, on the fast path, its fd id
// (the same number).
func (c *Client) ids() (claim, fd uint64) {
	claim = c.next.Add(1)
	if c.mailbox != nil {
		fd = claim
	}
	return claim, fd
}

func callErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", what, cerr)
	}
	return fmt.Errorf("%s: %w", what, fromStatus(err))
}

func (c *Client) Dial(ctx context.Context, addr string) (net.Conn, error) {
	what := "dial " + addr
	scheme, err := Scheme(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	claim, fd := c.ids()
	r, err := c.rpc.Dial(ctx, &transportpb.DialRequest{Addr: addr, FdId: fd, Claim: claim})
	if err != nil {
		c.abandon(claim, fd, err)
		return nil, callErr(ctx, what, err)
	}
	return c.conn(ctx, what, scheme, r)
}

// abandon cleans up after a Dial or Accept the host gave up on before it
// saw the answer (cancelled, timed out): the plugin may have made the
// connection anyway. It tells the plugin to close it, and closes a socket
// that was already on its way over the fd channel.
func (c *Client) abandon(claim, fd uint64, err error) {
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
	default:
		return // the plugin answered: no connection was made
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.rpc.Abandon(ctx, &transportpb.AbandonRequest{Claim: claim})
		if fd == 0 {
			return
		}
		// Once Abandon has answered the plugin will not send the socket
		// any more: it is on its way already, or never comes.
		tctx, tcancel := context.WithTimeout(context.Background(), time.Second)
		defer tcancel()
		if f, err := c.mailbox.Take(tctx, fd); err == nil {
			f.Close()
		}
	}()
}

// conn turns the plugin's answer into a net.Conn: the handed-over socket,
// or a stream.
func (c *Client) conn(ctx context.Context, what, scheme string, r *transportpb.ConnResponse) (net.Conn, error) {
	if r.FdId != 0 {
		if c.mailbox == nil {
			return nil, fmt.Errorf("%s: plugin handed over fd %d without an fd channel", what, r.FdId)
		}
		// The socket was sent before the answer: wait for it even if ctx
		// ended meanwhile, or it would be left in the mailbox.
		tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f, err := c.mailbox.Take(tctx, r.FdId)
		if err != nil {
			return nil, fmt.Errorf("%s: take socket: %w", what, err)
		}
		defer f.Close()
		nc, err := net.FileConn(f)
		if err != nil {
			return nil, fmt.Errorf("%s: socket from plugin: %w", what, err)
		}
		return nc, nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	st, err := c.rpc.Stream(sctx)
	if err == nil {
		err = st.Send(&transportpb.Frame{Conn: r.Conn})
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: open stream: %w", what, fromStatus(err))
	}
	sc := newStreamConn(st, cancel, scheme, r.LocalAddr, r.RemoteAddr)
	if !r.CloseWrite {
		return noHalfClose{sc}, nil
	}
	return sc, nil
}

// noHalfClose hides CloseWrite of a connection the plugin cannot half-close.
type noHalfClose struct{ net.Conn }

func (c *Client) Listen(ctx context.Context, addr string) (net.Listener, error) {
	what := "listen on " + addr
	scheme, err := Scheme(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	r, err := c.rpc.Listen(ctx, &transportpb.ListenRequest{Addr: addr})
	if err != nil {
		return nil, callErr(ctx, what, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	return &listener{c: c, id: r.Listener, addr: Addr{scheme, r.Addr}, ctx: lctx, cancel: cancel}, nil
}

// listener is a plugin's listener on the host. Each Accept is an RPC that
// waits in the plugin; Close cancels them all.
type listener struct {
	c      *Client
	id     uint64
	addr   Addr
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

var _ net.Listener = (*listener)(nil)

func (l *listener) Accept() (net.Conn, error) {
	if l.ctx.Err() != nil {
		return nil, l.opErr(net.ErrClosed)
	}
	claim, fd := l.c.ids()
	r, err := l.c.rpc.Accept(l.ctx, &transportpb.AcceptRequest{Listener: l.id, FdId: fd, Claim: claim})
	if err != nil {
		l.c.abandon(claim, fd, err)
		if l.ctx.Err() != nil {
			return nil, l.opErr(net.ErrClosed)
		}
		return nil, l.opErr(fromStatus(err))
	}
	nc, err := l.c.conn(l.ctx, "accept on "+l.addr.Str, l.addr.Net, r)
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, l.opErr(net.ErrClosed)
		}
		return nil, l.opErr(err)
	}
	return nc, nil
}

func (l *listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: l.addr.Net, Addr: l.addr, Err: err}
}

// Close stops the listener; blocked Accepts return net.ErrClosed.
func (l *listener) Close() error {
	err := error(nil)
	first := false
	l.once.Do(func() {
		first = true
		l.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, rerr := l.c.rpc.CloseListener(ctx, &transportpb.CloseListenerRequest{Listener: l.id}); rerr != nil {
			err = fmt.Errorf("close listener %s: %w", l.addr.Str, fromStatus(rerr))
		}
	})
	if !first {
		return l.opErr(net.ErrClosed)
	}
	return err
}

func (l *listener) Addr() net.Addr { return l.addr }
