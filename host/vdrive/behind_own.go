package vdrive

import (
	"errors"
	"slices"

	"github.com/tarnfs/tarn/host/cap"
)

// What a name may hold by this node's own doing. A replayed link is made
// only over what its record lists (Prev, Also: behind_replay.go), so the
// list must hold every cap this node's earlier links of the name may have
// left there; a cap missing from it makes the replay take this node's own
// link for another node's change and keep the older file, the newer one
// acknowledged going to the failed links. Listing the whole chain of
// links of a name rewritten while one of them is being made does not
// do: a file rewritten faster than its folder changes (a program saving
// it every few milliseconds, many puts of one name in a burst) keeps a
// link of it pending for as long as it is rewritten, and a record can
// list only the latest maxAlso caps, so one made early in the chain fell
// off the list.
//
// So each name with links not yet made keeps ownName: the cap its entry
// is known to hold (base: where the chain began, then each link of it
// made), and the caps of the links taken into a folder change since
// (tried: made or not, their change's outcome is not known yet, or it
// failed and may have reached the grid). A link replaced while pending is
// never taken, and never listed. A new record lists base as Prev and the
// tried links, the one in flight and the one pending (it may be taken
// before the record replaces it) as Also: all a replay can find there by
// this node's doing, however long the chain. It lives while the name has
// links pending, in flight or being journaled; the next link after that
// reads the entry again.

// ownName is what one name of a folder may hold by this node's doing.
type ownName struct {
	base  *string  // the entry's cap as last known (nil: unknown, records of older versions)
	tried []string // caps of links taken into a change since base was known
}

// newOwnName starts a name's state from its first record.
func newOwnName(rec linkRecord) *ownName {
	st := &ownName{tried: slices.Clone(rec.Also)}
	if rec.Prev != nil {
		p := *rec.Prev
		st.base = &p
	}
	return st
}

// ownLocked is the state of name in bd, made from l's record when
// missing. b.mu is held.
func (bd *behindDir) ownLocked(name string, l *plink) *ownName {
	if bd.own == nil {
		bd.own = map[string]*ownName{}
	}
	st := bd.own[name]
	if st == nil {
		st = newOwnName(l.rec)
		bd.own[name] = st
	}
	return st
}

// forgetOwnLocked drops name's state once nothing of it is pending, in
// flight or being journaled. b.mu is held.
func (bd *behindDir) forgetOwnLocked(name string) {
	if bd.pending[name] == nil && bd.inflight[name] == nil && bd.busy[name] == nil {
		delete(bd.own, name)
	}
}

// takenLocked notes that l is taken into a folder change. b.mu is held.
func (bd *behindDir) takenLocked(l *plink) {
	st := bd.ownLocked(l.rec.Name, l)
	if !slices.Contains(st.tried, l.rec.Cap) {
		st.tried = append(st.tried, l.rec.Cap)
	}
	// A name rewritten through a long outage (each retry taking a new
	// cap) would grow tried without bound, and ownPrior's work with it:
	// a record lists only the latest maxAlso, so the latest 2*maxAlso
	// (one of them may be base, filtered out) give it the same list.
	if len(st.tried) > maxTried {
		st.tried = slices.Delete(st.tried, 0, len(st.tried)-maxTried)
	}
}

// maxTried bounds ownName.tried (takenLocked).
const maxTried = 2 * maxAlso

// madeLocked notes that l's change succeeded with the entry holding l's
// cap: whatever earlier links left there is replaced. b.mu is held.
func (bd *behindDir) madeLocked(l *plink) {
	if st := bd.own[l.rec.Name]; st != nil {
		c := l.rec.Cap
		st.base, st.tried = &c, nil
	}
}

// inEntry reports whether a link's change, settled with the change's
// error err and the link's own lerr, left the entry holding its cap.
func inEntry(err, lerr error) bool {
	return err == nil && (lerr == nil || errors.Is(lerr, errMadeBefore) || errors.Is(lerr, errMetaSuperseded))
}

// ownPrior is Prev and Also for a new record of name in folder k, from
// what its caller found (prev, also: priorCaps over the entry or the
// name's pending link) and what this node's own links of the name may
// have left there since (ownName). The caller holds the name (lockName).
func (b *Behind) ownPrior(k cap.MutableRead, name string, prev *string, also []string) (*string, []string) {
	if prev == nil {
		return prev, also // an older record's chain: unchecked
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.dirs[k]
	if bd == nil || bd.own[name] == nil {
		return prev, also // the first link of the name: prev is the entry's
	}
	st := bd.own[name]
	base := prev
	if st.base != nil {
		base = st.base
	}
	// What the caller found (the entry, when the links it saw were made
	// meanwhile), then the links in the order they may land.
	cands := append([]string{*prev}, st.tried...)
	if l := bd.inflight[name]; l != nil {
		cands = append(cands, l.rec.Cap)
	}
	if l := bd.pending[name]; l != nil {
		cands = append(cands, l.rec.Cap)
	}
	var out []string
	for i, c := range cands {
		if c == *base || slices.Contains(cands[i+1:], c) {
			continue
		}
		out = append(out, c)
	}
	if len(out) > maxAlso {
		out = out[len(out)-maxAlso:]
	}
	p := *base
	return &p, out
}
