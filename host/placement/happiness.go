package placement

import "sort"

// Happiness returns the servers-of-happiness of a placement: the size of a
// maximum matching between servers and share numbers, where an edge joins
// a share to each server holding it. It is the number of servers that each
// contribute a distinct share, so any K of them that survive can rebuild
// the file when happiness >= H >= K.
//
// holders maps a share number to the servers that hold it.
func Happiness(holders map[int][]string) int {
	g := newGraph()
	for sh, srvs := range holders {
		for _, s := range srvs {
			g.addEdge(sh, s)
		}
	}
	return g.maxMatching()
}

// graph is a bipartite graph of share numbers and server ids, with a
// matching that maxMatching grows by augmenting paths (Kuhn's algorithm:
// O(V·E), plenty for N <= 256 shares and a grid's servers).
type graph struct {
	shares  []int
	adj     map[int][]string // share -> servers, in preference order
	hasEdge map[int]map[string]bool
	matchSh map[int]string // share -> server
	matchSv map[string]int // server -> share
}

func newGraph() *graph {
	return &graph{
		adj:     map[int][]string{},
		hasEdge: map[int]map[string]bool{},
		matchSh: map[int]string{},
		matchSv: map[string]int{},
	}
}

func (g *graph) addEdge(share int, server string) {
	m := g.hasEdge[share]
	if m == nil {
		m = map[string]bool{}
		g.hasEdge[share] = m
		g.shares = append(g.shares, share)
	}
	if m[server] {
		return
	}
	m[server] = true
	g.adj[share] = append(g.adj[share], server)
}

// match records share–server as matched (the edge must exist and both ends
// be free).
func (g *graph) match(share int, server string) {
	g.matchSh[share] = server
	g.matchSv[server] = share
}

// maxMatching extends the current matching to a maximum one and returns
// its size. Shares are tried in increasing order and each share's servers
// in edge order, so the result is deterministic.
func (g *graph) maxMatching() int {
	sort.Ints(g.shares)
	for _, sh := range g.shares {
		if _, ok := g.matchSh[sh]; ok {
			continue
		}
		seen := map[string]bool{}
		g.augment(sh, seen)
	}
	return len(g.matchSh)
}

// augment looks for an augmenting path from the free share sh and flips it.
func (g *graph) augment(sh int, seen map[string]bool) bool {
	for _, sv := range g.adj[sh] {
		if seen[sv] {
			continue
		}
		seen[sv] = true
		other, taken := g.matchSv[sv]
		if !taken || g.augment(other, seen) {
			g.match(sh, sv)
			return true
		}
	}
	return false
}
