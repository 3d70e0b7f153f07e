package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tarnfs/tarn/sdk/transport/transportpb"
)

// closeGrace bounds how long a closed fallback connection keeps trying to
// deliver what was written before it (like a kernel's send buffer).
const closeGrace = 5 * time.Second

// streamConn is a fallback connection on the host: a net.Conn whose bytes
// travel in Frames over a gRPC stream to the plugin, which holds the real
// connection.
//
// One goroutine sends (so a Write returns once its last frame is handed to
// the sender, as a socket's Write returns once the kernel has the bytes) and
// one receives (so the stream's flow control, not an unbounded buffer,
// holds back a peer the host does not read).
type streamConn struct {
	st           transportpb.Transport_StreamClient
	cancel       context.CancelFunc
	local, remot net.Addr

	wq    chan *transportpb.Frame // to the sender; unbuffered
	rq    chan []byte             // from the receiver; closed when it ends
	rbuf  []byte                  // what the last Read left
	rmu   sync.Mutex              // one Read at a time
	wmu   sync.Mutex              // one Write at a time, so frames never interleave
	rdl   deadline
	wdl   deadline
	done  chan struct{} // closed by Close
	once  sync.Once
	sdone chan struct{} // closed when the sender has finished
	ended chan struct{} // closed when the stream has ended

	emu  sync.Mutex
	rerr error // why the receiver ended (io.EOF for a clean end)
	werr error // why the sender failed
}

var _ net.Conn = (*streamConn)(nil)

func newStreamConn(st transportpb.Transport_StreamClient, cancel context.CancelFunc, network, local, remote string) *streamConn {
	c := &streamConn{
		st: st, cancel: cancel,
		local: Addr{network, local}, remot: Addr{network, remote},
		wq: make(chan *transportpb.Frame), rq: make(chan []byte),
		rdl: makeDeadline(), wdl: makeDeadline(),
		done: make(chan struct{}), sdone: make(chan struct{}), ended: make(chan struct{}),
	}
	go c.sender()
	go c.receiver()
	return c
}

func (c *streamConn) sender() {
	defer close(c.sdone)
	for {
		select {
		case f := <-c.wq:
			if err := c.st.Send(f); err != nil {
				c.emu.Lock()
				c.werr = err
				c.emu.Unlock()
				// Drain writers until Close; their writes fail.
				for {
					select {
					case <-c.wq:
					case <-c.done:
						return
					}
				}
			}
		case <-c.done:
			// Everything written was sent: end our side; the plugin
			// closes the connection and ends the stream.
			c.st.CloseSend()
			return
		}
	}
}

func (c *streamConn) receiver() {
	defer close(c.ended)
	deliver := true // false once Read has seen the end
	stop := func(err error) {
		if deliver {
			c.setRerr(err)
			close(c.rq)
			deliver = false
		}
	}
	for {
		f, err := c.st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				stop(io.EOF)
			} else {
				stop(fmt.Errorf("read %s: %w", c.remot, fromStatus(err)))
			}
			return
		}
		// Once Read has seen the end, keep receiving until the stream
		// ends, so the plugin is never stuck sending to us.
		if deliver && len(f.Data) > 0 {
			select {
			case c.rq <- f.Data:
			case <-c.done:
				stop(net.ErrClosed)
			}
		}
		if f.CloseWrite {
			stop(io.EOF)
		}
	}
}

func (c *streamConn) setRerr(err error) {
	c.emu.Lock()
	if c.rerr == nil {
		c.rerr = err
	}
	c.emu.Unlock()
}

func (c *streamConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.local.Network(), Source: c.local, Addr: c.remot, Err: err}
}

func (c *streamConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *streamConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	switch {
	case c.closed():
		return 0, c.opErr("read", net.ErrClosed)
	case c.rdl.expired():
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	if len(c.rbuf) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		select {
		case b, ok := <-c.rq:
			if !ok {
				c.emu.Lock()
				err := c.rerr
				c.emu.Unlock()
				if err == io.EOF {
					return 0, io.EOF
				}
				if c.closed() {
					err = net.ErrClosed
				}
				return 0, c.opErr("read", err)
			}
			c.rbuf = b
		case <-c.rdl.wait():
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		case <-c.done:
			return 0, c.opErr("read", net.ErrClosed)
		}
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

func (c *streamConn) Write(p []byte) (int, error) {
	return c.send(p, false)
}

// CloseWrite half-closes: the peer reads EOF once it has read everything
// written before; this side can still read.
func (c *streamConn) CloseWrite() error {
	_, err := c.send(nil, true)
	return err
}

func (c *streamConn) send(p []byte, closeWrite bool) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	op := "write"
	if closeWrite {
		op = "close write"
	}
	n := 0
	for first := true; first || len(p) > 0; first = false {
		switch {
		case c.closed():
			return n, c.opErr(op, net.ErrClosed)
		case c.wdl.expired():
			return n, c.opErr(op, os.ErrDeadlineExceeded)
		}
		c.emu.Lock()
		werr := c.werr
		c.emu.Unlock()
		if werr != nil {
			if errors.Is(werr, io.EOF) {
				// The plugin ended the stream: the connection is gone.
				werr = io.ErrClosedPipe
			}
			return n, c.opErr(op, fromStatus(werr))
		}
		chunk := p[:min(len(p), FrameSize)]
		// A copy: the sender may still hold the frame after a deadline
		// returned this Write.
		f := &transportpb.Frame{Data: append([]byte(nil), chunk...)}
		if len(p) == len(chunk) {
			f.CloseWrite = closeWrite
		}
		select {
		case c.wq <- f:
			n += len(chunk)
			p = p[len(chunk):]
		case <-c.wdl.wait():
			return n, c.opErr(op, os.ErrDeadlineExceeded)
		case <-c.done:
			return n, c.opErr(op, net.ErrClosed)
		}
	}
	return n, nil
}

// Close ends the connection at once for local callers; what was written is
// still delivered for up to closeGrace before the stream is cut.
func (c *streamConn) Close() error {
	first := false
	c.once.Do(func() {
		first = true
		close(c.done)
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	go func() {
		grace, stop := context.WithTimeout(context.Background(), closeGrace)
		defer stop()
		select {
		case <-c.sdone:
		case <-grace.Done():
		}
		// The plugin ends the stream once it closed the connection.
		select {
		case <-c.ended:
		case <-grace.Done():
		}
		c.cancel()
	}()
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remot }

func (c *streamConn) SetDeadline(t time.Time) error {
	if c.closed() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	if c.closed() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.rdl.set(t)
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	if c.closed() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	c.wdl.set(t)
	return nil
}

// deadline is a resettable deadline whose wait channel closes when it
// passes (the pattern of net.Pipe).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // wait for the timer callback to finish and close cancel
	}
	d.timer = nil
	closed := isClosedChan(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func (d *deadline) expired() bool { return isClosedChan(d.wait()) }

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
