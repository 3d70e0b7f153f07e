package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/transport"
)

func init() {
	sentinels = append(sentinels, transport.ErrBadAddress)
	kinds[pluginkit.KindTransport] = kindDef{
		version:   transport.ProtocolVersion,
		newPlugin: transport.NewHostPlugin,
		check: func(raw any) error {
			if _, ok := raw.(transport.Transport); !ok {
				return fmt.Errorf("dispensed a %T, not a transport", raw)
			}
			return nil
		},
		info: func(ctx context.Context, raw any) (string, error) {
			in, err := raw.(transport.Transport).Info(ctx)
			return in.Version, err
		},
	}
}

// Transport is the supervised transport plugin. A Listener it returns
// outlives the plugin process: when the process dies, the listener starts
// a new one and listens again on the same address, so a server keeps
// accepting. Connections already handed to the host as sockets (the fast
// path) survive a plugin restart; streamed ones (the fallback) end with it.
type Transport struct{ s *supervisor }

func tr(raw any) transport.Transport { return raw.(transport.Transport) }

func (t *Transport) Info(ctx context.Context) (transport.Info, error) {
	var in transport.Info
	err := t.s.call(ctx, func(raw any) (err error) { in, err = tr(raw).Info(ctx); return err })
	return in, err
}

func (t *Transport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := t.s.call(ctx, func(raw any) (err error) { c, err = tr(raw).Dial(ctx, addr); return err })
	return c, err
}

// Listen listens on addr. When addr asked for a system-chosen port, later
// re-listens use the port first chosen, so the address peers know stays
// right.
func (t *Transport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	p, err := t.s.get(ctx)
	if err != nil {
		return nil, err
	}
	defer t.s.release(p)
	l, err := tr(p.raw).Listen(ctx, addr)
	if err != nil {
		if isKindSentinel(err) {
			return nil, err
		}
		return nil, t.s.died(p, err)
	}
	return &listener{t: t, addr: l.Addr(), cur: l, p: p, done: make(chan struct{})}, nil
}

// listener re-establishes itself after a plugin restart.
type listener struct {
	t    *Transport
	addr net.Addr // as first bound; its String() is what re-listens ask for

	mu     sync.Mutex
	cur    net.Listener // nil while re-establishing
	p      *proc        // the process cur belongs to
	closed bool
	done   chan struct{}
}

func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	if l.cur != nil {
		return l.cur.Close()
	}
	return nil
}

func (l *listener) closedErr() error {
	return &net.OpError{Op: "accept", Net: l.addr.Network(), Addr: l.addr, Err: net.ErrClosed}
}

func (l *listener) Accept() (net.Conn, error) {
	log := l.t.s.log
	wait := l.t.s.h.opts.BackoffMin
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, l.closedErr()
		}
		cur, p := l.cur, l.p
		l.mu.Unlock()
		if cur == nil {
			if err := l.relisten(); err != nil {
				if errors.Is(err, ErrClosed) { // the host is closing: no more plugin
					return nil, l.closedErr()
				}
				log.Warn("re-listen after plugin restart failed; retrying", "address", l.addr.String(), "error", err, "in", wait)
				select {
				case <-l.done:
				case <-time.After(wait):
				}
				wait = min(wait*2, l.t.s.h.opts.BackoffMax)
				continue
			}
			wait = l.t.s.h.opts.BackoffMin
			continue
		}
		c, err := cur.Accept()
		if err == nil {
			return c, nil
		}
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return nil, l.closedErr()
		}
		if !errors.Is(l.t.s.died(p, err), ErrPluginDied) {
			return nil, err
		}
		log.Warn("listener lost with its plugin process; listening again", "address", l.addr.String(), "pid", p.p.Pid)
		cur.Close()
		l.mu.Lock()
		if l.cur == cur {
			l.cur = nil
		}
		l.mu.Unlock()
	}
}

// relisten starts the plugin again if needed and listens on the address
// first bound.
func (l *listener) relisten() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.t.s.h.opts.StartTimeout)
	defer cancel()
	go func() {
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	p, err := l.t.s.get(ctx)
	if err != nil {
		return err
	}
	defer l.t.s.release(p)
	nl, err := tr(p.raw).Listen(ctx, l.addr.String())
	if err != nil {
		return fmt.Errorf("listen again on %s: %w", l.addr, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		nl.Close()
		return nil
	}
	l.cur, l.p = nl, p
	l.t.s.log.Info("listening again", "address", l.addr.String(), "pid", p.p.Pid)
	return nil
}
