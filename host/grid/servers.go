package grid

import (
	"fmt"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/nodelink"
)

// Server is one storage server as the client sees it.
type Server struct {
	// NodeID names the server on the placement ring (identity.NodeIDOf its
	// key hash). Empty: derived from Addr.
	NodeID string
	// Addr is its node address with the key pin,
	// "tarn://KEYHASH@tcp:host:port".
	Addr string
}

// ServerSource gives the servers of the grid as known now. It is asked at
// the start of every upload and download, so a live list (the
// introducer's) is followed without restarting the client. It must be safe
// for concurrent use.
type ServerSource interface {
	Servers() []Server
}

// StaticServers is a fixed server list.
type StaticServers []Server

// Servers returns the list.
func (s StaticServers) Servers() []Server { return s }

// ServerFunc adapts a function (for instance a thin wrapper over the
// introducer's ServerList) to a ServerSource.
type ServerFunc func() []Server

// Servers calls f.
func (f ServerFunc) Servers() []Server { return f() }

var (
	_ ServerSource = StaticServers(nil)
	_ ServerSource = ServerFunc(nil)
)

// normalize checks a server's address and fills in its node id.
func (s Server) normalize() (Server, error) {
	a, err := nodelink.ParseAddr(s.Addr)
	if err != nil {
		return s, fmt.Errorf("server %q: %w", s.NodeID, err)
	}
	if s.NodeID == "" {
		s.NodeID = identity.NodeIDOf(a.KeyHash)
	}
	return s, nil
}
