//go:build unix

package storagedisk

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
)

// compactDivisor: a pack is compacted once its live share records fill
// less than 1/compactDivisor of it.
const compactDivisor = 4

// compactCurrentMin: the current pack is compacted (after a roll) only
// once its dead bytes reach this much, so that deletes among the newest
// shares do not roll tiny packs; without it a node whose small shares all
// fit in one pack (under 64 MiB) would never get space back from deletes.
var compactCurrentMin int64 = 1 << 20

// maybeCompact compacts pack n when most of it is dead (deleted shares,
// tombstones). Called after a Delete, with no stripe lock held. A failure
// leaves the pack as it was, and is logged: the next Delete tries again.
func (d *Disk) maybeCompact(n uint32) {
	if !d.pack.wantsCompaction(n) {
		return
	}
	// Every stripe: no share may be claimed, sealed or deleted while its
	// record moves (a Delete's tombstone must land after the copy).
	for i := range d.stripes {
		d.stripes[i].Lock()
	}
	err := d.pack.compact(n)
	if errors.Is(err, errCompactNoRoom) {
		err = d.pack.compactSmallFirst(n)
	}
	for i := range d.stripes {
		d.stripes[i].Unlock()
	}
	if err != nil && !errors.Is(err, errCompactNoRoom) {
		d.pack.logf("storage disk: compact pack %s: %v", packName(n), err)
	}
}

// lockStripes locks the stripes of indexes, each once, in the order
// maybeCompact takes them all in, and returns what unlocks them.
func (d *Disk) lockStripes(indexes [][storage.StorageIndexSize]byte) func() {
	var held [len(d.stripes)]bool
	for _, idx := range indexes {
		mu := d.stripe(idx)
		for k := range d.stripes {
			if &d.stripes[k] == mu {
				held[k] = true
				break
			}
		}
	}
	for k := range held {
		if held[k] {
			d.stripes[k].Lock()
		}
	}
	return func() {
		for k := range held {
			if held[k] {
				d.stripes[k].Unlock()
			}
		}
	}
}

// compactSmallFirst runs when the disk lacks the room to compact pack n:
// it compacts the other packs that want it, fewest live bytes first (each
// frees at least three times what it copies), and tries n again after
// each, so that a nearly full disk gets space back pack by pack instead
// of waiting until n's live shares alone fit in what is free. It stops at
// the first pack that does not fit either (the larger ones would not).
// Called with every stripe lock held.
func (p *packStore) compactSmallFirst(n uint32) error {
	p.mu.Lock()
	var cands []uint32
	for m := range p.files {
		if m != n && !p.zombie[m] && !p.stuck[m] {
			cands = append(cands, m)
		}
	}
	live := maps.Clone(p.live)
	p.mu.Unlock()
	slices.SortFunc(cands, func(a, b uint32) int { return cmp.Compare(live[a], live[b]) })
	for _, m := range cands {
		if !p.wantsCompaction(m) {
			continue
		}
		if err := p.compact(m); errors.Is(err, errCompactNoRoom) {
			return err
		} else if err != nil {
			p.logf("storage disk: compact pack %s: %v", packName(m), err)
			continue
		}
		if err := p.compact(n); !errors.Is(err, errCompactNoRoom) {
			return err
		}
	}
	return errCompactNoRoom
}

// errCompactNoRoom: the disk lacks the room a compaction's copies need.
var errCompactNoRoom = errors.New("no room for the copies")

// wantsCompaction reports whether pack n's live records fill less than
// 1/compactDivisor of it (and, for the current pack, whether its dead
// bytes reach compactCurrentMin).
func (p *packStore) wantsCompaction(n uint32) bool {
	p.amu.Lock()
	cur := p.cur != nil && p.curNum == n
	p.amu.Unlock()
	p.mu.Lock()
	f, live, c := p.files[n], p.live[n], p.codecs[n]
	p.mu.Unlock()
	if f == nil || c == nil {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false // closed meanwhile: a reclaim removed it
	}
	recs := st.Size() - packStart(c) // the header is not dead bytes
	if live*compactDivisor >= recs {
		return false
	}
	return !cur || recs-live >= compactCurrentMin
}

// packStart is the offset of the first record in a pack of codec c.
func packStart(c *recCodec) int64 { return int64(c.start) }

// compact copies the live share records of pack n to the current pack
// (rolling to a new one first when n is the current one),
// and the tombstones that may still be needed (those of shares with no
// record now, when an older pack exists that may hold one), waits until
// the copies are durable, points the index at them, and removes pack n.
// A crash at any point leaves either pack n or the copies (or both: the
// later record of a share wins, with the same bytes). The caller holds
// every stripe lock.
func (p *packStore) compact(n uint32) error {
	// The current pack first stops taking appends: its copies go to a
	// new one.
	p.amu.Lock()
	if p.cur != nil && p.curNum == n {
		if err := p.roll(); err != nil {
			p.amu.Unlock()
			return err
		}
	}
	p.amu.Unlock()
	// No record goes to pack n any more, and no share is claimed (every
	// stripe is held); wait for the Puts claimed before to settle: a
	// record of one in pack n is not in the index yet, and a tombstone in
	// pack n must be carried forward if its share's Put fails.
	for {
		p.mu.Lock()
		k := p.pending
		p.mu.Unlock()
		if k == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.mu.Lock()
	f, c := p.files[n], p.codecs[n]
	oldest := true
	for m := range p.files {
		if m < n {
			oldest = false
		}
	}
	p.mu.Unlock()
	if f == nil || c == nil {
		return nil // gone, or stuck (nothing of it is indexed)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() <= packStart(c) {
		return p.dropPack(n)
	}
	// The copies need room; on a full disk, wait until enough of the
	// pack is deleted (each Delete tries again) rather than write and
	// cut up to a quarter of a pack each time.
	p.mu.Lock()
	need := p.live[n]
	p.mu.Unlock()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err == nil && int64(fs.Bavail)*int64(fs.Bsize) < need+packDeleteRoom/2 {
		return errCompactNoRoom
	}
	// Mapped, not read: a pack is up to 64 MiB, and the plugin's heap
	// need not grow by that.
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map pack %s: %w", packName(n), err)
	}
	defer unix.Munmap(b)
	type move struct {
		ref  storage.Ref
		from packLoc
		at   int // in recs
	}
	var moves []move
	var recs []rawRecord
	tombs := map[storage.Ref]bool{}
	p.mu.Lock()
	// The scan checks each record again: a copy is written with a new
	// checksum, which must not bless bytes damaged since the open.
	c.scanRecords(b, int(packStart(c)), func(ev scanEvent) {
		if ev.skip > 0 {
			return
		}
		ref := ev.rec.ref
		switch ev.rec.kind {
		case recKindShare:
			loc := packLoc{pack: n, off: ev.off, n: uint32(len(ev.rec.data))}
			if e := p.entryLocked(ref); e != nil && e.committed && e.loc == loc {
				moves = append(moves, move{ref, loc, len(recs)})
				recs = append(recs, rawRecord{recKindShare, ref, ev.rec.data})
			}
		case recKindDelete:
			if !oldest && p.entryLocked(ref) == nil && !tombs[ref] {
				tombs[ref] = true
				recs = append(recs, rawRecord{recKindDelete, ref, nil})
			}
		}
	})
	p.mu.Unlock()

	locs, err := p.appendRaw(recs)
	if err != nil {
		return err
	}
	p.mu.Lock()
	for _, m := range moves {
		if e := p.entryLocked(m.ref); e != nil && e.committed && e.loc == m.from {
			e.loc = locs[m.at]
			p.live[n] -= m.from.recLen()
		} else {
			p.live[locs[m.at].pack] -= locs[m.at].recLen() // the copy is dead already
		}
	}
	// Shares still pointing here lie in records damaged since the pack
	// was scanned (the next scan would drop them too).
	for idx, list := range p.index {
		for _, s := range list {
			if s.committed && s.loc.pack == n {
				p.logf("storage disk: compact pack %s: share %x/%d at %d is damaged; dropped", packName(n), idx[:], s.num, s.loc.off)
				p.removeLocked(storage.Ref{Index: idx, Num: s.num})
			}
		}
	}
	p.mu.Unlock()
	return p.dropPack(n)
}

// dropPack removes pack n (removePack: it stays known as a zombie if
// that fails), once the group commit is done with it. Called with none of
// amu, mu and smu held.
func (p *packStore) dropPack(n uint32) error {
	p.waitRolled(n)
	return p.removePack(n)
}

// rawRecord is a record to append: a compaction's copy.
type rawRecord struct {
	kind byte
	ref  storage.Ref
	data []byte
}

// appendRaw appends records, each encoded for the pack it lands in
// (share records count as live there), and returns their locations once
// they are all durable.
func (p *packStore) appendRaw(recs []rawRecord) ([]packLoc, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	locs := make([]packLoc, len(recs))
	var live []int64 // per record, what it added to its pack's live bytes
	p.amu.Lock()
	start := p.curSize // where this batch began in the current pack
	for i, rec := range recs {
		rl := int64(recHeaderLen + len(rec.data))
		if p.mustRoll(rl) {
			if err := p.roll(); err != nil {
				p.amu.Unlock()
				p.unlive(locs[:i], live)
				return nil, err
			}
			start = p.curSize
		}
		var hdr [recHeaderLen]byte
		p.curCodec.encodeHeader(hdr[:], rec.kind, rec.ref, rec.data)
		if err := pwriteAll(p.cur, [][]byte{hdr[:], rec.data}, p.curSize); err != nil {
			// Cut the whole batch off the current pack, not only this
			// record: copies left behind by a compaction that failed for
			// want of room would take the room a later try needs.
			if p.cur.Truncate(start) != nil {
				p.broken = true
			} else {
				p.curSize = start
			}
			p.amu.Unlock()
			p.unlive(locs[:i], live)
			return nil, fmt.Errorf("append to pack %s: %w", packName(p.curNum), err)
		}
		locs[i] = packLoc{pack: p.curNum, off: p.curSize, n: uint32(rl - recHeaderLen)}
		add := int64(0)
		if rec.kind == recKindShare {
			add = rl
		}
		live = append(live, add)
		p.mu.Lock()
		p.live[p.curNum] += add
		p.mu.Unlock()
		p.curSize += rl
	}
	p.smu.Lock()
	p.written++
	seq := p.written
	p.smu.Unlock()
	p.amu.Unlock()
	if err := p.waitDurable(seq); err != nil {
		p.unlive(locs, live)
		return nil, fmt.Errorf("sync pack: %w", err)
	}
	return locs, nil
}

// unlive takes back what appendRaw added to the live bytes.
func (p *packStore) unlive(locs []packLoc, live []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, l := range locs {
		p.live[l.pack] -= live[i]
	}
}
