package placement

// Room is what a client knows of a server's free space: the figure it
// last announced (the introducer's announcement), if any. A server never
// announced (a static server list, a server known only from the node's
// cache) is Known false and is taken as having room: only an announcement
// says a server is full. A server that could not read its own free space
// announces the largest figure (introducer.FreeSpaceUnknown), room by the
// same rule.
//
// Uploads, the prediction of a small download (which must pick the
// servers its upload picked) and repairs all decide with Roomless.
type Room struct {
	Free  uint64 // bytes the server accepts, as announced
	Known bool   // Free comes from a live announcement
}

// TooSmall reports whether a server with room r is known not to take a
// share of need bytes: it announced 0 (FULL) or, when need is known
// (above 0), less than need.
func (r Room) TooSmall(need int64) bool {
	return r.Known && (r.Free == 0 || (need > 0 && r.Free < uint64(need)))
}

// Roomless returns the positions of rooms (one per server, in ring order)
// known to be too small for a share of need bytes, so an upload can leave
// those servers out of its ring while keeping the permuted order of the
// rest, or nil when there are none or when leaving them out would leave
// fewer than h servers: an announcement may be stale, and the servers'
// own answer (a refusal) is the truth then.
func Roomless(rooms []Room, need int64, h int) map[int]bool {
	var out map[int]bool
	for i, r := range rooms {
		if r.TooSmall(need) {
			if out == nil {
				out = map[int]bool{}
			}
			out[i] = true
		}
	}
	if len(rooms)-len(out) < h {
		return nil
	}
	return out
}
