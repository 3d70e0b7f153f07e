package introducer

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/identity"
	"github.com/tarnfs/tarn/host/introducer/introducerpb"
	"github.com/tarnfs/tarn/host/nodelink"
)

// Server is one storage server as a client knows it.
type Server struct {
	NodeID    string
	KeyHash   string   // the pin of its key
	Addresses []string // node addresses, "tarn://KEYHASH@transport,..."
	Nickname  string
	FreeSpace uint64
	Version   string
	Sequence  uint64
	// ExpiresAt is when the announcement lapses; zero for a static server
	// not (or no longer) announced.
	ExpiresAt time.Time
	// Static: listed in the profile; never expires.
	Static bool
	// Cached: known from the node's cache of the announcements it last
	// verified (cache.go), not yet from an introducer since the node
	// started; ExpiresAt may have passed.
	Cached bool
}

// StaticServer makes a server list entry from a profile's
// [[grid.servers]] entry: a transport address ("tcp:host:port") and the
// server's key hash.
func StaticServer(name, transportAddr, keyHash string) (Server, error) {
	a, err := nodelink.ParseAddr(nodelink.Scheme + keyHash + "@" + transportAddr)
	if err != nil {
		return Server{}, fmt.Errorf("static server %q: %w", name, err)
	}
	return Server{
		NodeID:    identity.NodeIDOf(a.KeyHash),
		KeyHash:   a.KeyHash,
		Addresses: []string{a.String()},
		Nickname:  name,
		Static:    true,
	}, nil
}

// ServerList is a client's current view of the grid's storage servers:
// static servers plus live announcements. It is safe for concurrent use.
type ServerList struct {
	mu      sync.Mutex
	static  map[string]Server                           // by node id
	live    map[string]Server                           // by node id, from announcements
	signed  map[string]*introducerpb.SignedAnnouncement // live's, as verified
	cached  map[string]Server                           // by node id, from the cache until an introducer answers
	changed chan struct{}
}

// NewServerList starts a list holding the static servers.
func NewServerList(static []Server) *ServerList {
	l := &ServerList{
		static: map[string]Server{}, live: map[string]Server{}, cached: map[string]Server{},
		signed: map[string]*introducerpb.SignedAnnouncement{}, changed: make(chan struct{}),
	}
	for _, s := range static {
		s.Static = true
		l.static[s.NodeID] = s
	}
	return l
}

// Servers returns a snapshot, sorted by node id. An announced server that
// is also static shows its announcement (fresher addresses and space); a
// cached one shows its cached announcement until a live one comes.
func (l *ServerList) Servers() []Server {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Server, 0, len(l.static)+len(l.live)+len(l.cached))
	for id, s := range l.live {
		_, s.Static = l.static[id]
		out = append(out, s)
	}
	for id, s := range l.cached {
		if _, ok := l.live[id]; !ok {
			_, s.Static = l.static[id]
			out = append(out, s)
		}
	}
	for id, s := range l.static {
		_, live := l.live[id]
		_, cached := l.cached[id]
		if !live && !cached {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Changed returns a channel closed at the next change of the list. Take it
// before calling Servers to miss nothing.
func (l *ServerList) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *ServerList) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Update adds or refreshes a server from a verified storage record. It
// returns ErrStale, wrapped, when the record is not newer than the one
// held.
func (l *ServerList) Update(r Record) error { return l.UpdateSigned(r, nil) }

// UpdateSigned is Update keeping the signed announcement r was verified
// from (sa), for the node's cache (Signed).
func (l *ServerList) UpdateSigned(r Record, sa *introducerpb.SignedAnnouncement) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.live[r.NodeID]; ok && r.Sequence <= old.Sequence {
		return fmt.Errorf("announcement of %s: %w: sequence %d, holding %d", r.NodeID, ErrStale, r.Sequence, old.Sequence)
	}
	l.live[r.NodeID] = serverOf(r)
	if sa != nil {
		l.signed[r.NodeID] = sa
	} else {
		delete(l.signed, r.NodeID)
	}
	l.notifyLocked()
	return nil
}

func serverOf(r Record) Server {
	return Server{
		NodeID:    r.NodeID,
		KeyHash:   r.KeyHash(),
		Addresses: append([]string(nil), r.Addresses...),
		Nickname:  r.Nickname,
		FreeSpace: r.FreeSpace,
		Version:   r.Version,
		Sequence:  r.Sequence,
		ExpiresAt: r.ExpiresAt,
	}
}

// Seed puts servers from the node's cache in the list (marked Cached),
// until DropCached: a live announcement of the same node shows instead.
func (l *ServerList) Seed(cached []Server) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range cached {
		s.Cached = true
		l.cached[s.NodeID] = s
	}
	l.notifyLocked()
}

// DropCached forgets the cached servers: an introducer's view arrived and
// replaces them.
func (l *ServerList) DropCached() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cached) == 0 {
		return
	}
	clear(l.cached)
	l.notifyLocked()
}

// Signed returns the signed announcements of the live servers, as
// verified, for the node's cache.
func (l *ServerList) Signed() []*introducerpb.SignedAnnouncement {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*introducerpb.SignedAnnouncement, 0, len(l.signed))
	for _, sa := range l.signed {
		out = append(out, sa)
	}
	return out
}

// Expire drops announcements that lapsed by now and returns the next
// expiry time still ahead (zero when none).
func (l *ServerList) Expire(now time.Time) time.Time { return l.expire(now, false) }

// ExpireKeeping is Expire for a client whose introducers are all out of
// reach: a lapsed announcement becomes a cached server (as one read from
// the node's cache at start) instead of being dropped, until an
// introducer's view replaces it (DropCached). Its server did not re-announce
// because there was no introducer to announce to.
func (l *ServerList) ExpireKeeping(now time.Time) time.Time { return l.expire(now, true) }

func (l *ServerList) expire(now time.Time, keep bool) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next time.Time
	changed := false
	for id, s := range l.live {
		if !now.Before(s.ExpiresAt) {
			delete(l.live, id)
			delete(l.signed, id)
			if keep {
				s.Cached = true
				l.cached[id] = s
			}
			changed = true
			continue
		}
		if next.IsZero() || s.ExpiresAt.Before(next) {
			next = s.ExpiresAt
		}
	}
	if changed {
		l.notifyLocked()
	}
	return next
}

// WaitFor blocks until the list holds at least n servers or ctx ends.
func (l *ServerList) WaitFor(ctx context.Context, n int) error {
	for {
		ch := l.Changed()
		have := len(l.Servers())
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d storage servers, have %d: %w", n, have, ctx.Err())
		}
	}
}
