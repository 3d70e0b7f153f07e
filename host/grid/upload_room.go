package grid

import "github.com/tarnfs/tarn/host/placement"

// Servers that announced no room. A storage node announces its free
// space through the introducer (re-announcing within seconds of a
// material change, and at once after refusing a put for lack of space),
// and the node's client copies it into Server.FreeSpace. An upload leaves
// out of its ring the servers known to be too full for its shares (0
// announced, or less than the share size), keeping the permuted order of
// the rest: without this, each upload would ask every full server (a
// survey round trip that answers "no room", or a refused put) before
// placing its shares elsewhere. A server of unknown space is asked as
// before; when the others would be too few for happiness, the full ones
// are asked too (an announcement may be stale, a refusal is the truth).

// A small download predicts where an upload put the shares
// (download_predict.go) with the same rule over the servers' announced
// space as it stands at the download: roomless with the share size from
// the cap. An announcement that changed since the upload makes the
// prediction miss, and the download locates the shares.
//
// The checker's repair leaves the same servers out of the targets of new
// shares (checker.repairCHK), through Server.Room and placement.Roomless.

// Room is what the client knows of s's free space, for placement.Roomless.
func (s Server) Room() placement.Room {
	return placement.Room{Free: s.FreeSpace, Known: s.SpaceKnown}
}

// roomless returns the positions in r of the servers known to lack room
// for a share of need bytes (need 0: only those announced full), or nil
// when the others would number fewer than h.
func roomless(r []Server, need int64, h int) map[int]bool {
	rooms := make([]placement.Room, len(r))
	for i, s := range r {
		rooms[i] = s.Room()
	}
	return placement.Roomless(rooms, need, h)
}

// union returns the positions in a or b (a new map when both are non-empty).
func union(a, b map[int]bool) map[int]bool {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make(map[int]bool, len(a)+len(b))
	for i := range a {
		out[i] = true
	}
	for i := range b {
		out[i] = true
	}
	return out
}

// leaveOut returns the ring positions (of n) an upload leaves out: the
// hung and the full ones while at least h others remain (others also
// not left out by gone, if set: servers found dead a moment ago), else
// the hung ones alone if that leaves h, else none.
func leaveOut(n, h int, hung, full map[int]bool, gone func(i int) bool) map[int]bool {
	left := func(out map[int]bool) int {
		k := 0
		for i := 0; i < n; i++ {
			if !out[i] && (gone == nil || !gone(i)) {
				k++
			}
		}
		return k
	}
	if both := union(hung, full); left(both) >= h {
		return both
	}
	if left(hung) >= h {
		return hung
	}
	return nil
}
