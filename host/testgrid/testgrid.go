// Package testgrid runs a grid of storage servers inside a test: each a
// real storageserver over the memory backend, listening on loopback TCP
// with pinned TLS (nodelink), as separate nodes would. Tests stop, restart
// and freeze servers and damage the shares they hold, then check what
// clients (host/grid) make of it. Everything is cleaned up by t.Cleanup.
package testgrid

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/tarnfs/tarn/host/grid"
	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/storageserver"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	transporttcp "github.com/tarnfs/tarn/plugins/transport-tcp"
	"github.com/tarnfs/tarn/sdk/storage"
	"github.com/tarnfs/tarn/sdk/transport"
)

// Options tune a test grid; the zero value is fine.
type Options struct {
	// GridSecret is the grid's membership secret; nil makes a random one.
	GridSecret []byte
	// Limit is each server's memory backend size (default
	// storagememory.DefaultLimit).
	Limit int64
	// Backend, if set, makes server i's backend instead of a memory one
	// (for instance the disk backend in t.TempDir(), to keep shares out of
	// the test's heap).
	Backend func(i int) (storage.Backend, error)
	// Server, if set, adjusts each server's config before it starts (its
	// Backend and GridSecret are already set).
	Server func(i int, cfg *storageserver.Config)
}

// Grid is a running test grid.
type Grid struct {
	// Secret is the grid secret clients need to write.
	Secret []byte
	// Transport is the TCP transport the servers listen on.
	Transport transport.Transport
	// Servers are the storage servers, in start order.
	Servers []*Server
	t       testing.TB
}

// Server is one storage server of a test grid.
type Server struct {
	Index   int
	NodeID  string
	KeyHash string
	// Addr is the node address: "tarn://KEYHASH@tcp:127.0.0.1:PORT".
	Addr string
	// Backend holds the server's shares and survives Stop and Restart.
	Backend *Backend

	g      *Grid
	cert   tls.Certificate
	listen string // transport address to listen on again after Stop
	cfg    storageserver.Config
	gate   gate

	mu   sync.Mutex
	srv  *storageserver.Server
	gsrv *grpc.Server
}

// New starts n storage servers; t.Cleanup stops them.
func New(t testing.TB, n int, opts *Options) *Grid {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.GridSecret == nil {
		o.GridSecret = make([]byte, 32)
		rand.Read(o.GridSecret)
	}
	if o.Limit <= 0 {
		o.Limit = storagememory.DefaultLimit
	}
	g := &Grid{Secret: o.GridSecret, Transport: transporttcp.New(), t: t}
	t.Cleanup(g.stopAll)
	for i := 0; i < n; i++ {
		id, err := identity.Create(t.TempDir())
		if err != nil {
			t.Fatalf("testgrid: server %d identity: %v", i, err)
		}
		cert, err := id.TLSCertificate()
		if err != nil {
			t.Fatalf("testgrid: server %d certificate: %v", i, err)
		}
		var be storage.Backend = storagememory.NewLimit(o.Limit)
		if o.Backend != nil {
			if be, err = o.Backend(i); err != nil {
				t.Fatalf("testgrid: server %d backend: %v", i, err)
			}
		}
		s := &Server{Index: i, NodeID: id.NodeID(), KeyHash: id.KeyHash(), g: g, cert: cert,
			listen: "tcp:127.0.0.1:0", Backend: &Backend{Backend: be}}
		// Like a real node, refuse slot writes the slot's key did not sign;
		// a test that needs a lax server clears it through o.Server.
		s.cfg = storageserver.Config{Backend: s.Backend, GridSecret: o.GridSecret,
			ValidateSlotWrite: mutable.ValidateSlotWrite}
		if o.Server != nil {
			o.Server(i, &s.cfg)
		}
		if err := s.start(); err != nil {
			t.Fatalf("testgrid: start server %d: %v", i, err)
		}
		g.Servers = append(g.Servers, s)
	}
	return g
}

// start listens (on the same port after a restart) and serves.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gsrv != nil {
		return fmt.Errorf("server %d is running", s.Index)
	}
	srv, err := storageserver.New(s.cfg)
	if err != nil {
		return err
	}
	ln, err := s.g.Transport.Listen(context.Background(), s.listen)
	if err != nil {
		srv.Close()
		return err
	}
	s.listen = ln.Addr().String()
	s.Addr = "tarn://" + s.KeyHash + "@" + s.listen
	gsrv := srv.NewGRPCServer(s.cert)
	go gsrv.Serve(&gatedListener{Listener: ln, g: &s.gate})
	s.srv, s.gsrv = srv, gsrv
	return nil
}

// Stop closes the server's listener and every connection, as a killed
// process would; its shares stay in Backend. Stopping twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gsrv == nil {
		return
	}
	s.gate.thaw()
	s.gsrv.Stop()
	s.srv.Close()
	s.srv, s.gsrv = nil, nil
}

// Restart starts a stopped server again on the same address, key and
// backend.
func (s *Server) Restart() error { return s.start() }

// Freeze makes the server hang: connections stay open but nothing more is
// read or answered, new connections never finish their handshake.
func (s *Server) Freeze() { s.gate.freeze() }

// Thaw undoes Freeze.
func (s *Server) Thaw() { s.gate.thaw() }

// Frozen reports whether the server is frozen.
func (s *Server) Frozen() bool { return s.gate.frozen() }

// Running reports whether the server is started.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gsrv != nil
}

// Stats returns the storage server's counters (zero when stopped).
func (s *Server) Stats() storageserver.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return storageserver.Stats{}
	}
	return s.srv.Stats()
}

// GridServer is the server as a grid client lists it.
func (s *Server) GridServer() grid.Server { return grid.Server{NodeID: s.NodeID, Addr: s.Addr} }

// Source is the grid's server list for grid.Config.Servers.
func (g *Grid) Source() grid.StaticServers {
	out := make(grid.StaticServers, len(g.Servers))
	for i, s := range g.Servers {
		out[i] = s.GridServer()
	}
	return out
}

// Addrs are the servers' node addresses.
func (g *Grid) Addrs() []string {
	out := make([]string, len(g.Servers))
	for i, s := range g.Servers {
		out[i] = s.Addr
	}
	return out
}

// ClientCert makes a fresh node identity for a client and returns its TLS
// certificate.
func (g *Grid) ClientCert() tls.Certificate {
	g.t.Helper()
	id, err := identity.Create(g.t.TempDir())
	if err != nil {
		g.t.Fatalf("testgrid: client identity: %v", err)
	}
	c, err := id.TLSCertificate()
	if err != nil {
		g.t.Fatalf("testgrid: client certificate: %v", err)
	}
	return c
}

// Holders maps each share of a storage index to the servers (by index in
// Servers) holding it sealed.
func (g *Grid) Holders(index [storage.StorageIndexSize]byte) map[int][]int {
	out := map[int][]int{}
	for _, s := range g.Servers {
		nums, err := s.Backend.Shares(index)
		if err != nil {
			g.t.Fatalf("testgrid: list shares on server %d: %v", s.Index, err)
		}
		for _, n := range nums {
			out[int(n)] = append(out[int(n)], s.Index)
		}
	}
	return out
}

// Counts sums the backend counters of every server.
func (g *Grid) Counts() Counts {
	var c Counts
	for _, s := range g.Servers {
		x := s.Backend.Counts()
		c.Creates += x.Creates
		c.Seals += x.Seals
		c.BytesWritten += x.BytesWritten
		c.Reads += x.Reads
		c.BytesRead += x.BytesRead
	}
	return c
}

func (g *Grid) stopAll() {
	for _, s := range g.Servers {
		s.Stop()
	}
}

var _ net.Listener = (*gatedListener)(nil)
