package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// ErrClosed is returned once an FdConn or Mailbox has been closed.
var ErrClosed = errors.New("dataplane: fd channel closed")

// FdConn is one end of a unix socketpair carrying file descriptors, each
// tagged with a 64-bit id chosen by the sender. The id travels in the gRPC
// answer too, so the receiver can match the descriptor to the call.
// Windows has no descriptor passing: NewFdPair and FdConnFromFile fail there
// with an error wrapping errors.ErrUnsupported (fdconn_other.go).
type FdConn struct {
	c  *net.UnixConn
	mu sync.Mutex // one message at a time on the sending side
}

// Close closes the socket; a Mailbox reading it stops.
func (c *FdConn) Close() error { return c.c.Close() }

// Mailbox receives descriptors on the host side and hands each to the call
// that waits for its id, whichever of the two arrives first.
type Mailbox struct {
	conn *FdConn

	mu      sync.Mutex
	arrived map[uint64]*os.File
	waiting map[uint64]chan *os.File
	err     error
}

// NewMailbox starts reading conn in a goroutine until it is closed.
func NewMailbox(conn *FdConn) *Mailbox {
	m := &Mailbox{conn: conn, arrived: map[uint64]*os.File{}, waiting: map[uint64]chan *os.File{}}
	go m.loop()
	return m
}

func (m *Mailbox) loop() {
	for {
		id, f, err := m.conn.recv()
		m.mu.Lock()
		if err != nil {
			m.err = ErrClosed
			for id, ch := range m.waiting {
				close(ch)
				delete(m.waiting, id)
			}
			m.mu.Unlock()
			return
		}
		if ch, ok := m.waiting[id]; ok {
			delete(m.waiting, id)
			ch <- f
		} else {
			m.arrived[id] = f
		}
		m.mu.Unlock()
	}
}

// Take waits for the descriptor with the given id.
func (m *Mailbox) Take(ctx context.Context, id uint64) (*os.File, error) {
	m.mu.Lock()
	if f, ok := m.arrived[id]; ok {
		delete(m.arrived, id)
		m.mu.Unlock()
		return f, nil
	}
	if m.err != nil {
		m.mu.Unlock()
		return nil, m.err
	}
	ch := make(chan *os.File, 1)
	m.waiting[id] = ch
	m.mu.Unlock()
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return f, nil
	case <-ctx.Done():
		m.mu.Lock()
		delete(m.waiting, id)
		m.mu.Unlock()
		// The descriptor may have been delivered meanwhile; do not leak it.
		select {
		case f, ok := <-ch:
			if ok {
				f.Close()
			}
		default:
		}
		return nil, fmt.Errorf("dataplane: wait for fd %d: %w", id, ctx.Err())
	}
}

// Close stops the mailbox and closes descriptors nobody took.
func (m *Mailbox) Close() error {
	err := m.conn.Close()
	m.mu.Lock()
	for id, f := range m.arrived {
		f.Close()
		delete(m.arrived, id)
	}
	m.mu.Unlock()
	return err
}
