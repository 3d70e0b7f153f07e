package testgrid

import (
	"net"
	"sync"
)

// gate is a switch that freezes every connection of one server: while
// frozen, reads and writes block (bytes already received stay unprocessed
// and nothing is answered) but sockets stay open, as with a SIGSTOPped
// process.
type gate struct {
	mu     sync.Mutex
	thawed chan struct{} // non-nil while frozen; closed on thaw
}

func (g *gate) freeze() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.thawed == nil {
		g.thawed = make(chan struct{})
	}
}

func (g *gate) thaw() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.thawed != nil {
		close(g.thawed)
		g.thawed = nil
	}
}

func (g *gate) frozen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.thawed != nil
}

// wait blocks while the gate is frozen, or until closed is closed.
func (g *gate) wait(closed <-chan struct{}) {
	for {
		g.mu.Lock()
		ch := g.thawed
		g.mu.Unlock()
		if ch == nil {
			return
		}
		select {
		case <-ch:
		case <-closed:
			return
		}
	}
}

// gatedListener wraps every accepted connection in the gate.
type gatedListener struct {
	net.Listener
	g *gate
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: l.g, closed: make(chan struct{})}, nil
}

type gatedConn struct {
	net.Conn
	g       *gate
	closed  chan struct{}
	closeMu sync.Once
}

func (c *gatedConn) Read(p []byte) (int, error) {
	c.g.wait(c.closed)
	n, err := c.Conn.Read(p)
	// Bytes that arrived while frozen are held back until thawed.
	c.g.wait(c.closed)
	return n, err
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.g.wait(c.closed)
	return c.Conn.Write(p)
}

func (c *gatedConn) Close() error {
	c.closeMu.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
