package node

import (
	"errors"
	"net"
	"sync"
	"time"
)

// links follows the grid client's links to each storage server as the
// node's countingTransport sees them open and end, so the status can say
// that a server's process died (kill -9, a crash: its kernel closes the
// socket and the client's read of it ends at once) without an operation
// failing first and without any traffic of its own. A host that vanishes
// without closing (power, network) is noticed by the links' gRPC
// keepalive (nodelink: a ping after 30 s idle, 10 s to answer), which
// they send anyway.
type links struct {
	mu sync.Mutex
	by map[string]*serverLinks
}

type serverLinks struct {
	open    int
	lostAt  time.Time // when the last open link ended with a read error
	lostErr string
}

func newLinks() *links { return &links{by: map[string]*serverLinks{}} }

func (l *links) opened(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.by[id]
	if s == nil {
		s = &serverLinks{}
		l.by[id] = s
	}
	s.open++
	s.lostAt, s.lostErr = time.Time{}, ""
}

// ended notes a link's end and why (errLinkClosed when no read error
// came first). The grid client closes a link only when it stops, when the
// server failed (its health says so already) or moved (a new link
// follows); gRPC closes one on the server's GOAWAY (a stop) or a silent
// keepalive. So a server left with no link has lost it.
func (l *links) ended(id string, err error, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.by[id]
	if s == nil {
		return
	}
	s.open--
	if s.open == 0 {
		s.lostAt, s.lostErr = at, err.Error()
	}
}

// errLinkClosed is why a link ended that was closed before a read failed:
// the server said goodbye (GOAWAY: it stops), or the keepalive found it
// silent.
var errLinkClosed = errors.New("connection closed (the server stopped, or stopped answering keepalives)")

// lost returns when the server's last link was lost and why, when it has
// no link open now and the last one ended by the server's side.
func (l *links) lost(id string) (time.Time, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.by[id]
	if s == nil || s.open > 0 {
		return time.Time{}, ""
	}
	return s.lostAt, s.lostErr
}

// trackedConn reports its end to links once: the first read error (the
// peer closed or reset it), or a Close.
type trackedConn struct {
	net.Conn
	links *links
	id    string
	once  sync.Once
}

func (c *trackedConn) end(err error) {
	c.once.Do(func() { c.links.ended(c.id, err, time.Now()) })
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.end(err)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.end(errLinkClosed)
	return c.Conn.Close()
}
