package vdrive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tarnfs/tarn/host/dirnode"
)

// Replay is idempotent. A node killed after a folder change made its
// pending links but before their journal records were deleted replays
// those records at start. Making such a link again is harmless only if
// nobody changed the entry since; another node may have replaced or
// removed it meanwhile, and re-making the link would undo that change.
// So each record holds what the name held when the link was acknowledged
// (linkRecord.Prev: the entry's cap, or that of this node's latest link
// of it made since), and Also: this node's earlier links of the name that
// may land there before a replay (behind_own.go), and a replayed link is
// made only over those: an
// entry that already holds the link's cap was made before the stop (the
// record just leaves the journal) unless the record's metadata was set
// (SetMetadata of the link not yet made, or being made: behind.go
// setMeta) and the entry's differs, which is made then only over what
// this node's own earlier link of it left there (linkRecord.Base):
// metadata another node set since is newer, and the record is dropped,
// logged (errMetaSuperseded); an entry holding anything else
// changed since (ErrChangedSince) and is left as it is, the link kept in
// the failed links, logged. The file stays reachable: nothing
// acknowledged is lost, and nothing another node did is undone.

// ErrChangedSince: a replayed link's name holds something other than
// what it held when the link was acknowledged, and other than the link
// itself: another node changed it; the link is kept in the failed links.
var ErrChangedSince = errors.New("entry changed by another node since the link was acknowledged")

// errMadeBefore: a replayed link's entry holds its cap already: made
// before the last stop. Not an error of the link.
var errMadeBefore = errors.New("link made before the last stop")

// errMetaSuperseded: a replayed record of metadata set after the upload
// (linkRecord.Meta) finds its file linked with metadata neither it nor
// this node's earlier links of the name set: another node edited it
// since, later than the record. The record is dropped, logged; the file
// is linked, so nothing goes to the failed links.
var errMetaSuperseded = errors.New("metadata changed by another node since it was acknowledged; not made over that change")

// metaPrint is a short print of an entry's metadata as sameMeta compares
// it, for linkRecord.Base.
func metaPrint(m Metadata) string {
	h := sha256.New()
	ns := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00", m.Type, m.Size, ns(m.Ctime), ns(m.Mtime))
	for _, k := range slices.Sorted(maps.Keys(m.Extra)) {
		fmt.Fprintf(h, "%q=%q\x00", k, m.Extra[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// metaBase is the Base of a record of metadata set over link l (setMeta):
// l's own base and what l's link leaves in the entry, the latest
// maxAlso of them.
func metaBase(l *plink) []string {
	base := slices.Clone(l.rec.Base)
	if p := metaPrint(l.entry().Meta); !slices.Contains(base, p) {
		base = append(base, p)
	}
	if len(base) > maxAlso {
		base = base[len(base)-maxAlso:]
	}
	return base
}

// maxAlso bounds linkRecord.Also: a name whose links keep being taken
// into folder changes that fail, more than this many different ones, is
// checked against its latest links (a made link is Prev, and ends the
// list: behind_own.go).
const maxAlso = 8

// replayCheck decides whether a replayed link l may be made in tx (nil),
// is made already (errMadeBefore), or would undo another node's change
// (ErrChangedSince). Links acknowledged in this run, and records of
// older versions (no Prev), are made as they are.
func (l *plink) replayCheck(tx *dirnode.Tx) error {
	if !l.replayed || l.rec.Prev == nil {
		return nil
	}
	e, ok, err := tx.Get(l.rec.Name)
	if err != nil {
		return err
	}
	cur := ""
	if ok {
		cur = e.ReadCap
	}
	switch {
	case cur == l.rec.Cap && l.rec.Meta && !sameMeta(e.Meta, l.rec):
		// Its metadata was set after the link was made, or while the
		// change making it was under way (setMeta): the metadata
		// acknowledged is made now, over what this node's own link left
		// there; not over another node's later edit of the entry.
		if l.rec.Base != nil && !slices.Contains(l.rec.Base, metaPrint(e.Meta)) {
			return errMetaSuperseded
		}
		return nil
	case cur == l.rec.Cap:
		return errMadeBefore
	case cur == *l.rec.Prev || slices.Contains(l.rec.Also, cur):
		return nil
	case cur == "":
		return fmt.Errorf("%w: %s was removed", ErrChangedSince, l.rec.Name)
	default:
		return fmt.Errorf("%w: %s now holds %s", ErrChangedSince, l.rec.Name, shortCap(cur))
	}
}

// sameMeta reports whether an entry's metadata is what a record with
// metadata set (linkRecord.Meta) promised.
func sameMeta(m Metadata, rec linkRecord) bool {
	return m.Type == TypeFile && m.Size == rec.Size && m.Ctime.Equal(rec.Ctime) && m.Mtime.Equal(rec.Mtime) &&
		maps.Equal(m.Extra, rec.Extra)
}

// priorCaps is what a new link of a name replaces, for its record: the
// entry's cap (prev) when no link of the name is pending, else the
// pending link's own prior caps and its cap. Behind.add narrows it to
// the caps this node's links may leave there (ownPrior, behind_own.go).
func priorCaps(pending *plink, entryCap string) (*string, []string) {
	if pending == nil {
		return &entryCap, nil
	}
	if pending.rec.Prev == nil {
		// An older record's link: what preceded it is unknown.
		return &pending.rec.Cap, nil
	}
	prev := *pending.rec.Prev
	also := append(slices.Clone(pending.rec.Also), pending.rec.Cap)
	if len(also) > maxAlso {
		also = also[len(also)-maxAlso:]
	}
	return &prev, also
}
