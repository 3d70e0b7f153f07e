package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned once an FdConn or Mailbox has been closed.
var ErrClosed = errors.New("dataplane: fd channel closed")

// FdConn is one end of a unix socketpair carrying file descriptors, each
// tagged with a 64-bit id chosen by the sender. The id travels in the gRPC
// answer too, so the receiver can match the descriptor to the call.
type FdConn struct {
	c  *net.UnixConn
	mu sync.Mutex // one message at a time on the sending side
}

// NewFdPair makes a socketpair. The host keeps the *FdConn and hands the
// *os.File to the plugin process as an extra file.
func NewFdPair() (*FdConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("dataplane: socketpair: %w", err)
	}
	mine, err := FdConnFromFile(os.NewFile(uintptr(fds[0]), "tarn-fdchan-host"))
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return mine, os.NewFile(uintptr(fds[1]), "tarn-fdchan-plugin"), nil
}

// FdConnFromFile wraps an inherited socketpair end. The file is consumed.
func FdConnFromFile(f *os.File) (*FdConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("dataplane: fd channel: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("dataplane: fd channel is a %T, not a unix socket", c)
	}
	return &FdConn{c: uc}, nil
}

// Send passes a duplicate of f's descriptor with the given id. The caller
// keeps ownership of f and may close it once Send returns.
func (c *FdConn) Send(id uint64, f *os.File) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	rights := unix.UnixRights(int(f.Fd()))
	c.mu.Lock()
	defer c.mu.Unlock()
	n, oobn, err := c.c.WriteMsgUnix(b[:], rights, nil)
	if err != nil {
		return fmt.Errorf("dataplane: send fd %d: %w", id, err)
	}
	if n != len(b) || oobn != len(rights) {
		return fmt.Errorf("dataplane: send fd %d: short write", id)
	}
	return nil
}

// recv reads one (id, file) message.
func (c *FdConn) recv() (uint64, *os.File, error) {
	var b [8]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.c.ReadMsgUnix(b[:], oob)
	if err != nil {
		return 0, nil, err
	}
	if n != len(b) {
		return 0, nil, fmt.Errorf("dataplane: short fd message (%d bytes)", n)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return 0, nil, fmt.Errorf("dataplane: fd message without rights: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return 0, nil, fmt.Errorf("dataplane: fd message with %d descriptors: %v", len(fds), err)
	}
	unix.CloseOnExec(fds[0])
	id := binary.BigEndian.Uint64(b[:])
	return id, os.NewFile(uintptr(fds[0]), fmt.Sprintf("tarn-fd-%d", id)), nil
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
