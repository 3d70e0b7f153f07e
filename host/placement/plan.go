package placement

import (
	"errors"
	"fmt"
	"sort"
)

// MaxShares bounds N: share numbers are one byte in the formats.
const MaxShares = 256

// Sentinel errors callers branch on.
var (
	// ErrNotHappy: the servers cannot hold the shares on H distinct servers.
	// Returned errors are *HappinessError, which wraps it.
	ErrNotHappy = errors.New("not enough servers for happiness")
	// ErrBadParams: K, H, N or the server list make no sense.
	ErrBadParams = errors.New("bad placement parameters")
)

// Params are the share parameters: any K shares rebuild the file, an upload
// must spread shares over at least H distinct servers, N shares are made.
type Params struct{ K, H, N int }

// Validate checks 1 <= K <= H <= N <= MaxShares.
func (p Params) Validate() error {
	switch {
	case p.K < 1:
		return fmt.Errorf("%w: k=%d must be at least 1", ErrBadParams, p.K)
	case p.N > MaxShares:
		return fmt.Errorf("%w: n=%d is more than %d", ErrBadParams, p.N, MaxShares)
	case p.K > p.H:
		return fmt.Errorf("%w: k=%d is more than h=%d", ErrBadParams, p.K, p.H)
	case p.H > p.N:
		return fmt.Errorf("%w: h=%d is more than n=%d", ErrBadParams, p.H, p.N)
	}
	return nil
}

// Server is one storage server as the planner sees it.
type Server struct {
	ID string // node id
	// Writable: the server answered and accepts new shares (not full, not
	// read-only). A server that is not writable still counts for the shares
	// it already holds.
	Writable bool
}

// HappinessError says why a placement cannot reach H.
type HappinessError struct {
	Need   int // H
	Usable int // the best happiness these servers allow
	Known  int // servers given to the planner (the grid gives those that answered)
	Full   int // of them, not writable
	Failed int // of them, failed during the upload
}

func (e *HappinessError) Error() string {
	s := fmt.Sprintf("upload needs shares on %d distinct servers (happiness), only %d usable: %d answered, %d full",
		e.Need, e.Usable, e.Known, e.Full)
	if e.Failed > 0 {
		s += fmt.Sprintf(", %d failed", e.Failed)
	}
	return s
}

// Unwrap makes errors.Is(err, ErrNotHappy) true.
func (e *HappinessError) Unwrap() error { return ErrNotHappy }

// Placement is a plan for the N shares of one file.
type Placement struct {
	Params Params
	// Ring is the server list in ring order, as given to Plan.
	Ring []Server
	// Existing maps a share to the servers of Ring found holding it; these
	// shares are kept and not written again.
	Existing map[int][]string
	// Writes maps a share to the one server it must be written to.
	Writes map[int]string
	// Homeless lists shares that are neither held nor writable anywhere
	// (only when no server is writable, yet happiness was reached).
	Homeless []int
	// Happiness is the happiness of Existing plus Writes.
	Happiness int

	pos    map[string]int // id -> index in Ring
	failed map[string]bool
}

// Plan places the N shares of a file on ring (servers in ring order for the
// file's storage index) given the shares already found on them (share ->
// servers; shares >= N and servers not in ring are ignored).
//
// It keeps existing shares, then gives each share still without a distinct
// server its own writable server in ring order, then reshuffles through
// augmenting paths until the matching is maximum, and finally doubles up the
// shares left over on the writable servers holding the fewest shares. It
// fails with a *HappinessError when the best possible happiness is below H.
func Plan(p Params, ring []Server, existing map[int][]string) (*Placement, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	pl := &Placement{
		Params:   p,
		Ring:     append([]Server(nil), ring...),
		Existing: map[int][]string{},
		Writes:   map[int]string{},
		pos:      make(map[string]int, len(ring)),
		failed:   map[string]bool{},
	}
	for i, s := range ring {
		if s.ID == "" {
			return nil, fmt.Errorf("%w: server %d has an empty id", ErrBadParams, i)
		}
		if _, dup := pl.pos[s.ID]; dup {
			return nil, fmt.Errorf("%w: server %s is listed twice", ErrBadParams, s.ID)
		}
		pl.pos[s.ID] = i
	}
	for sh, srvs := range existing {
		if sh < 0 || sh >= p.N {
			continue
		}
		seen := map[string]bool{}
		for _, id := range srvs {
			if _, ok := pl.pos[id]; ok && !seen[id] {
				seen[id] = true
				pl.Existing[sh] = append(pl.Existing[sh], id)
			}
		}
		// Ring order, read-only servers first: a matching that uses them
		// leaves writable servers free for new shares.
		sort.Slice(pl.Existing[sh], func(i, j int) bool {
			a, b := pl.Existing[sh][i], pl.Existing[sh][j]
			wa, wb := ring[pl.pos[a]].Writable, ring[pl.pos[b]].Writable
			if wa != wb {
				return !wa
			}
			return pl.pos[a] < pl.pos[b]
		})
		if len(pl.Existing[sh]) == 0 {
			delete(pl.Existing, sh)
		}
	}

	// 1. The best matching of the shares already in place.
	g := newGraph()
	for sh := 0; sh < p.N; sh++ {
		for _, id := range pl.Existing[sh] {
			g.addEdge(sh, id)
		}
	}
	g.maxMatching()

	// 2. One new share per free writable server, in ring order.
	next := 0
	for sh := 0; sh < p.N; sh++ {
		if _, ok := g.matchSh[sh]; ok {
			continue
		}
		for next < len(ring) {
			s := ring[next]
			next++
			if _, taken := g.matchSv[s.ID]; s.Writable && !taken {
				g.addEdge(sh, s.ID)
				g.match(sh, s.ID)
				break
			}
		}
	}

	// 3. Any share may go to any writable server: augment to a maximum.
	// Not needed when every share already has a server of its own.
	if len(g.matchSh) < p.N {
		for sh := 0; sh < p.N; sh++ {
			for _, s := range ring {
				if s.Writable {
					g.addEdge(sh, s.ID)
				}
			}
		}
	}
	pl.Happiness = g.maxMatching()
	for sh, id := range g.matchSh {
		if !contains(pl.Existing[sh], id) {
			pl.Writes[sh] = id
		}
	}
	if pl.Happiness < p.H {
		return nil, pl.notHappy(pl.Happiness)
	}

	// 4. Double up what is left, fewest shares first, ring order.
	for sh := 0; sh < p.N; sh++ {
		if len(pl.Existing[sh]) > 0 {
			continue
		}
		if _, ok := pl.Writes[sh]; ok {
			continue
		}
		id, ok := pl.leastLoaded(0)
		if !ok {
			pl.Homeless = append(pl.Homeless, sh)
			continue
		}
		pl.Writes[sh] = id
	}
	return pl, nil
}

func (pl *Placement) notHappy(usable int) *HappinessError {
	e := &HappinessError{Need: pl.Params.H, Usable: usable, Known: len(pl.Ring), Failed: len(pl.failed)}
	for _, s := range pl.Ring {
		if !s.Writable && !pl.failed[s.ID] {
			e.Full++
		}
	}
	return e
}

// load returns how many shares each live server holds or will hold.
func (pl *Placement) load() map[string]int {
	n := map[string]int{}
	for _, srvs := range pl.Existing {
		for _, id := range srvs {
			n[id]++
		}
	}
	for _, id := range pl.Writes {
		n[id]++
	}
	return n
}

// leastLoaded returns the usable writable server holding the fewest shares,
// the first in ring order from index start (wrapping) among equals.
func (pl *Placement) leastLoaded(start int) (string, bool) {
	n := pl.load()
	best, bestN := "", -1
	for i := range pl.Ring {
		s := pl.Ring[(start+i)%len(pl.Ring)]
		if !s.Writable || pl.failed[s.ID] {
			continue
		}
		if bestN < 0 || n[s.ID] < bestN {
			best, bestN = s.ID, n[s.ID]
		}
	}
	return best, bestN >= 0
}

// Holders returns every share's servers after the plan: existing plus
// written, without failed servers.
func (pl *Placement) Holders() map[int][]string {
	h := map[int][]string{}
	for sh, srvs := range pl.Existing {
		h[sh] = append(h[sh], srvs...)
	}
	for sh, id := range pl.Writes {
		if !contains(h[sh], id) {
			h[sh] = append(h[sh], id)
		}
	}
	return h
}

// ServerWrites is the shares one server must receive.
type ServerWrites struct {
	ID     string
	Shares []int // increasing
}

// ByServer returns the writes grouped by server, in ring order.
func (pl *Placement) ByServer() []ServerWrites {
	m := map[string][]int{}
	for sh, id := range pl.Writes {
		m[id] = append(m[id], sh)
	}
	var out []ServerWrites
	for _, s := range pl.Ring {
		if shs, ok := m[s.ID]; ok {
			sort.Ints(shs)
			out = append(out, ServerWrites{ID: s.ID, Shares: shs})
		}
	}
	return out
}

// Fail marks server id as failed during the upload: its existing and
// planned shares are dropped, and every share left without a holder is
// given to the next servers on the ring after it (first those holding
// nothing, then the least loaded). Other writes are not moved, so uploads
// already streaming to other servers go on. It returns the shares moved
// (share -> new server) and a *HappinessError when the plan can no longer
// reach H; the placement is updated either way.
func (pl *Placement) Fail(id string) (map[int]string, error) {
	at, ok := pl.pos[id]
	if !ok {
		return nil, fmt.Errorf("fail server %s: %w: not in the placement", id, ErrBadParams)
	}
	if pl.failed[id] {
		return map[int]string{}, nil
	}
	pl.failed[id] = true
	for sh, srvs := range pl.Existing {
		kept := srvs[:0:0]
		for _, s := range srvs {
			if s != id {
				kept = append(kept, s)
			}
		}
		if len(kept) == 0 {
			delete(pl.Existing, sh)
		} else {
			pl.Existing[sh] = kept
		}
	}
	for sh, s := range pl.Writes {
		if s == id {
			delete(pl.Writes, sh)
		}
	}
	moved := map[int]string{}
	pl.Homeless = nil
	for sh := 0; sh < pl.Params.N; sh++ {
		if len(pl.Existing[sh]) > 0 {
			continue
		}
		if _, ok := pl.Writes[sh]; ok {
			continue
		}
		to, ok := pl.leastLoaded(at + 1)
		if !ok {
			pl.Homeless = append(pl.Homeless, sh)
			continue
		}
		pl.Writes[sh] = to
		moved[sh] = to
	}
	pl.Happiness = Happiness(pl.Holders())
	if pl.Happiness < pl.Params.H {
		return moved, pl.notHappy(pl.Happiness)
	}
	return moved, nil
}

// Failed reports whether Fail was called for id.
func (pl *Placement) Failed(id string) bool { return pl.failed[id] }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
