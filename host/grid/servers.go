package grid

import (
	"fmt"
	"sync"
	"time"

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
	// FreeSpace is the free space the server last announced (bytes it
	// accepts), when SpaceKnown. Uploads leave a server known to be too
	// full for their shares out of their ring while enough others remain
	// (upload_room.go).
	FreeSpace uint64
	// SpaceKnown: FreeSpace comes from a live announcement. False for a
	// server never announced (static list, node cache): taken as having
	// room.
	SpaceKnown bool
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

// hungServers is the client's memory of servers that hang (a stopped
// process, a black-holed path: the connection stays open, nothing
// answers). A slot map, a slot write, an upload's survey or one-call
// write that stopped waiting for a server after a grace marks it until a
// server timeout later; an answer clears it. While a server is
// remembered, maps, plans and surveys leave it out as long as enough
// other servers remain, so a hung server costs the client one grace per
// server timeout rather than a wait in every operation. One per Client
// (kept in its mutState).
type hungServers struct {
	mu    sync.Mutex
	until map[string]time.Time // by node id
}

// mark remembers ids as hung until the given time.
func (h *hungServers) mark(ids []string, until time.Time) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.until == nil {
		h.until = map[string]time.Time{}
	}
	for _, id := range ids {
		h.until[id] = until
	}
}

// clear forgets that id hung (it answered).
func (h *hungServers) clear(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.until, id)
}

// has reports whether id is remembered as hung at now.
func (h *hungServers) has(id string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.until[id]
	if ok && now.After(t) {
		delete(h.until, id)
		return false
	}
	return ok
}

// skip returns the ring positions of servers remembered as hung at now.
func (h *hungServers) skip(r []Server, now time.Time) map[int]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out map[int]bool
	for i, s := range r {
		t, ok := h.until[s.NodeID]
		switch {
		case !ok:
		case now.After(t):
			delete(h.until, s.NodeID)
		default:
			if out == nil {
				out = map[int]bool{}
			}
			out[i] = true
		}
	}
	return out
}

// hung is the client's memory of hung servers.
func (c *Client) hung() *hungServers { return &c.mut().hung }

// markHung remembers ids as hung for one server timeout from now.
func (c *Client) markHung(ids []string) {
	c.hung().mark(ids, time.Now().Add(c.cfg.ServerTimeout))
}

// Hung reports whether the client remembers the storage server nodeID as
// hung: an operation stopped waiting for it (or it timed out) within the
// last server timeout, and it has not answered since. Other users of the
// same servers (the checker) leave such a server out rather than wait
// for it again.
func (c *Client) Hung(nodeID string) bool { return c.hung().has(nodeID, time.Now()) }

// gaveUp records that an operation stopped waiting for the servers ids
// after a grace: they are remembered as hung, counted as timeouts, and
// their health (ServerHealth, the status page) shows the fault. Their
// links are kept: a stopped server's link works again when it resumes, and
// a redial of a black-holed one would hang as long. A link being dialed
// right now is left to record its own outcome.
func (c *Client) gaveUp(ids []string, grace time.Duration) {
	c.markHung(ids)
	now := time.Now()
	for _, id := range ids {
		c.stats.errorOf(KindTimeout)
		c.mu.Lock()
		cn := c.conns[id]
		c.mu.Unlock()
		if cn == nil || !cn.mu.TryLock() {
			continue
		}
		cn.failedAt = now
		cn.lastErr = fmt.Sprintf("server %s: no answer within %s while the others answered (hung)", id, grace.Round(time.Millisecond))
		cn.mu.Unlock()
	}
}
