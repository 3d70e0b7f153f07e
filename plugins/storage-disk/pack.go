//go:build unix

package storagedisk

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tarnfs/tarn/sdk/storage"
)

// The packed store (docs/plugins-storage.md, "Packed small shares"): small
// shares given to Put are appended, as checksummed records, to a pack
// file; many Puts share one fdatasync (group commit). The packs are the
// only truth: the index (which record holds which share) lives in memory
// and is rebuilt by scanning them at start.
const (
	// maxPackShare: Put sends shares up to this size to the pack; larger
	// ones get files of their own (their write costs more than a file's
	// creation and fsyncs).
	maxPackShare = 256 << 10
	// packRollSize: a pack that reached this size is closed for appends.
	packRollSize = 64 << 20
)

// packDeleteRoom is the free space a Put to the pack leaves: deleting a
// packed share appends a tombstone, and giving space back copies the live
// records of a mostly dead pack, so a disk filled by packs to the last
// byte could never delete anything again.
var packDeleteRoom int64 = 256 << 10

// packLogf logs damage found in packs (tests catch it).
var packLogf = log.Printf

// packSync makes a pack's appended records durable (tests make it fail).
var packSync = fdatasync

// packRemove removes a pack file (tests make it fail).
var packRemove = os.Remove

// packLoc is where a share's record lies.
type packLoc struct {
	pack uint32
	off  int64 // of the record header
	n    uint32
}

// recLen is the length of the record at loc.
func (l packLoc) recLen() int64 { return recHeaderLen + int64(l.n) }

// packShare is one share of a storage index in the index.
type packShare struct {
	num       uint32
	loc       packLoc
	committed bool // durable and visible; false while its Put waits for the sync
}

type packStore struct {
	dir     string
	oldMax  uint32 // packs up to this number may be version 1 or 2 (FORMAT)
	rollAt  int64
	logf    func(format string, args ...any)
	bufPool sync.Pool

	// amu orders appends: the current pack, its size and the count of
	// records written. Taken before mu when both are needed.
	amu      sync.Mutex
	cur      *os.File // nil until the first append (or while the last pack is not version 3)
	curCodec *recCodec
	curNum   uint32
	curSize  int64
	written  uint64 // records appended so far (sequence numbers)
	broken   bool   // the current pack saw a write or sync error: roll

	// mu guards the index and the open packs.
	mu    sync.Mutex
	index map[[storage.StorageIndexSize]byte][]packShare
	// files holds every pack whose file may be on disk: also one whose
	// removal failed (zombie) and one whose header is damaged (stuck).
	// A compaction carries a tombstone forward while an older pack is
	// here, so a pack must not leave it before its removal is durable:
	// its records would come back at the next open with nothing left to
	// delete them.
	files  map[uint32]*os.File
	codecs map[uint32]*recCodec // of each pack in files that has records
	// zombie: compacted packs (their live shares copied, their needed
	// tombstones carried) whose removal failed; reclaim tries again.
	zombie map[uint32]bool
	// stuck: packs whose header is damaged: their records cannot be
	// checked, so they are neither indexed nor removed.
	stuck map[uint32]bool
	// live is the bytes of each pack's share records that are live or
	// pending (header included): a pack at 0 can go, one mostly dead
	// is compacted.
	live map[uint32]int64
	// pending counts the claims of Puts not settled yet (before their
	// append, waiting for its sync, or just past it). A compaction waits
	// until there are none: a record of one in the pack it compacts is
	// not in the index yet and would be left pointing at a removed pack,
	// and whether a tombstone must be carried forward depends on whether
	// the Put of its share succeeds.
	pending int

	// group commit state, under smu.
	smu        sync.Mutex
	cond       *sync.Cond
	synced     uint64 // every record up to this sequence number is durable
	failedUpTo uint64 // records up to this one were in a failed sync
	failErr    error
	syncing    bool
	// rolled lists the packs rolled while records in them may not be
	// durable yet, oldest first: the group commit syncs them before the
	// current pack, so that a pack is only ever synced by one leader at a
	// time (Linux reports a writeback error to one fsync only: a second
	// syncer could see success and acknowledge records whose pages were
	// dropped). Their files stay open until then (waitRolled).
	rolled []rolledPack
	syncs  atomic.Uint64 // fdatasyncs run by the group commit (tests)
}

// rolledPack is a pack rolled before its records were all synced.
type rolledPack struct {
	num  uint32
	f    *os.File
	upTo uint64 // the sequence number of its last record
}

func packName(n uint32) string { return fmt.Sprintf("%08d.pack", n) }

// parsePackName accepts only names packName makes.
func parsePackName(name string) (uint32, bool) {
	s, ok := strings.CutSuffix(name, ".pack")
	if !ok || len(s) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || packName(uint32(n)) != name || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// openPacks opens (creating if asked) the packs folder, scans every pack,
// truncates torn tails, and builds the index.
func openPacks(dir string, create bool, oldMax uint32) (*packStore, error) {
	p := &packStore{
		dir:    dir,
		oldMax: oldMax,
		rollAt: packRollSize,
		logf:   packLogf,
		index:  map[[storage.StorageIndexSize]byte][]packShare{},
		files:  map[uint32]*os.File{},
		codecs: map[uint32]*recCodec{},
		zombie: map[uint32]bool{},
		stuck:  map[uint32]bool{},
		live:   map[uint32]int64{},
	}
	p.cond = sync.NewCond(&p.smu)
	if create {
		if err := mkdirDurable(dir); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) && !create {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := parsePackName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	for _, n := range nums {
		if err := p.load(n); err != nil {
			p.closeFiles()
			return nil, err
		}
	}
	if len(nums) > 0 {
		// Appends go on in the last pack if it is a sound version 3
		// pack; else (version 1 or 2, or damaged) the first append
		// rolls to a new one.
		last := nums[len(nums)-1]
		p.curNum = last
		if c := p.codecs[last]; c != nil && c.start == packV3Start {
			st, err := p.files[last].Stat()
			if err != nil {
				p.closeFiles()
				return nil, fmt.Errorf("pack %s: %w", packName(last), err)
			}
			p.cur, p.curCodec, p.curSize = p.files[last], c, st.Size()
		}
	}
	// A new pack is numbered after every pack FORMAT names as older,
	// even once those are gone: only then is its copy B trusted alone.
	p.curNum = max(p.curNum, oldMax)
	p.reclaim()
	return p, nil
}

// load scans pack n into the index; a torn tail is cut off (and the cut
// made durable) so later appends follow the last sound record. A pack cut
// short in its header by a crash (it never held a record) is marked for
// removal (a zombie); one whose header copies are both damaged is kept
// unread (stuck).
func (p *packStore) load(n uint32) error {
	name := filepath.Join(p.dir, packName(n))
	f, err := os.OpenFile(name, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open pack %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("pack %s: %w", name, err)
	}
	p.files[n] = f
	p.live[n] += 0
	size := st.Size()
	var b []byte
	if size > 0 {
		if b, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return fmt.Errorf("map pack %s: %w", name, err)
		}
		defer unix.Munmap(b)
	}
	c, start, err := parsePackHeader(b, n > p.oldMax)
	switch {
	case errors.Is(err, errPackTorn):
		if size > 0 {
			p.logf("storage disk: pack %s: header cut short at 0 (%d bytes, no record): removed", name, size)
		}
		// No record: it may go at once (reclaim, below, removes zombies).
		p.zombie[n] = true
		return nil
	case errors.Is(err, errPackHeader):
		p.logf("storage disk: pack %s: header at 0 damaged (both copies): its %d bytes of records cannot be checked; kept, not read", name, size)
		p.stuck[n] = true
		return nil
	case err != nil:
		return fmt.Errorf("pack %s at 0: %w", name, err)
	}
	p.codecs[n] = c
	keep := c.scanRecords(b, start, func(ev scanEvent) {
		switch {
		case ev.gaveUp:
			p.logf("storage disk: pack %s: damage at %d, and too many forged-looking records after it: its last %d bytes are not read", name, ev.off, ev.skip)
		case ev.skip > 0:
			p.logf("storage disk: pack %s: %d damaged bytes at %d skipped; shares there are lost", name, ev.skip, ev.off)
		default:
			p.apply(ev.rec, packLoc{pack: n, off: ev.off, n: uint32(len(ev.rec.data))})
		}
	})
	if keep < size {
		p.logf("storage disk: pack %s: torn tail of %d bytes at %d cut off", name, size-keep, keep)
		if err := f.Truncate(keep); err != nil {
			return fmt.Errorf("truncate pack %s: %w", name, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("truncate pack %s: %w", name, err)
		}
	}
	return nil
}

// apply puts a scanned record into the index: a share record makes the
// share live (replacing an older record of it), a tombstone removes it.
func (p *packStore) apply(rec record, loc packLoc) {
	list := p.index[rec.ref.Index]
	i := slices.IndexFunc(list, func(s packShare) bool { return s.num == rec.ref.Num })
	if i >= 0 {
		p.live[list[i].loc.pack] -= list[i].loc.recLen()
		list = slices.Delete(list, i, i+1)
	}
	if rec.kind == recKindShare {
		list = append(list, packShare{num: rec.ref.Num, loc: loc, committed: true})
		p.live[loc.pack] += loc.recLen()
	}
	if len(list) == 0 {
		delete(p.index, rec.ref.Index)
	} else {
		p.index[rec.ref.Index] = list
	}
}

func (p *packStore) closeFiles() {
	for _, f := range p.files {
		f.Close()
	}
}

// close closes every pack.
func (p *packStore) close() error {
	// Let the group commit finish with every rolled pack (and the
	// current one) before their files close under it.
	p.smu.Lock()
	for p.syncing || len(p.rolled) > 0 {
		if p.syncing {
			p.cond.Wait()
			continue
		}
		p.syncRound()
	}
	p.smu.Unlock()
	p.amu.Lock()
	defer p.amu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeFiles()
	p.files = map[uint32]*os.File{}
	p.cur = nil
	return nil
}

// scanPack scans a whole pack's bytes b (header and records) as
// scanRecords does, with the pack's codec.
func scanPack(b []byte, newer bool, fn func(scanEvent)) (keep int64, err error) {
	c, start, err := parsePackHeader(b, newer)
	if err != nil {
		return 0, err
	}
	return c.scanRecords(b, start, fn), nil
}

// find returns the location of a visible (committed) share.
func (p *packStore) find(ref storage.Ref) (packLoc, *os.File, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.index[ref.Index] {
		if s.num == ref.Num && s.committed {
			return s.loc, p.files[s.loc.pack], true
		}
	}
	return packLoc{}, nil, false
}

// entryLocked returns the index entry of ref (visible or pending), or
// nil; p.mu must be held.
func (p *packStore) entryLocked(ref storage.Ref) *packShare {
	list := p.index[ref.Index]
	for i := range list {
		if list[i].num == ref.Num {
			return &list[i]
		}
	}
	return nil
}

// has reports whether the share is in the index, visible or still being
// put.
func (p *packStore) has(ref storage.Ref) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.index[ref.Index], func(s packShare) bool { return s.num == ref.Num })
}

// claim adds the share as pending; false if it is there already.
func (p *packStore) claim(ref storage.Ref) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.index[ref.Index]
	if slices.ContainsFunc(list, func(s packShare) bool { return s.num == ref.Num }) {
		return false
	}
	p.index[ref.Index] = append(list, packShare{num: ref.Num})
	p.pending++
	return true
}

// settle ends a claim: with loc set (the record append returned) the
// share becomes visible, without (the put failed) the claim goes.
func (p *packStore) settle(ref storage.Ref, loc *packLoc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending--
	list := p.index[ref.Index]
	i := slices.IndexFunc(list, func(s packShare) bool { return s.num == ref.Num })
	if i < 0 {
		return
	}
	if loc != nil {
		list[i].loc, list[i].committed = *loc, true
		return
	}
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(p.index, ref.Index)
	} else {
		p.index[ref.Index] = list
	}
}

// nums lists the visible share numbers of an index, sorted.
func (p *packStore) nums(index [storage.StorageIndexSize]byte) []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uint32
	for _, s := range p.index[index] {
		if s.committed {
			out = append(out, s.num)
		}
	}
	return out
}

// indexes returns the storage indexes with a visible packed share, sorted.
func (p *packStore) indexes() [][storage.StorageIndexSize]byte {
	p.mu.Lock()
	out := make([][storage.StorageIndexSize]byte, 0, len(p.index))
	for idx, list := range p.index {
		if slices.ContainsFunc(list, func(s packShare) bool { return s.committed }) {
			out = append(out, idx)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b [storage.StorageIndexSize]byte) int { return slices.Compare(a[:], b[:]) })
	return out
}

// readAt reads the packed share at loc like a file of its own.
func readPacked(f *os.File, loc packLoc, b []byte, off int64) (int, error) {
	if off >= int64(loc.n) {
		return 0, io.EOF
	}
	want := len(b)
	if rest := int64(loc.n) - off; int64(want) > rest {
		want = int(rest)
	}
	n, err := f.ReadAt(b[:want], loc.off+recHeaderLen+off)
	if err == nil && n < len(b) {
		err = io.EOF
	}
	if errors.Is(err, io.EOF) && n < want {
		err = io.ErrUnexpectedEOF // the pack is shorter than its index says
	}
	return n, err
}

// writeRecord writes one record at the end of the current pack (rolling
// to a new one first when it does not fit) and returns where it is and
// its sequence number for the group commit. Call with amu held. A
// partial write is cut off; should that fail too, the next append rolls
// to a new pack and the scan at start drops it. A share record counts
// towards its pack's references from here on.
func (p *packStore) writeRecord(kind byte, ref storage.Ref, data []byte) (packLoc, uint64, error) {
	rl := int64(recHeaderLen + len(data))
	if p.mustRoll(rl) {
		if err := p.roll(); err != nil {
			return packLoc{}, 0, err
		}
	}
	var hdr [recHeaderLen]byte
	p.curCodec.encodeHeader(hdr[:], kind, ref, data)
	loc := packLoc{pack: p.curNum, off: p.curSize, n: uint32(len(data))}
	if err := pwriteAll(p.cur, [][]byte{hdr[:], data}, p.curSize); err != nil {
		if p.cur.Truncate(p.curSize) != nil {
			p.broken = true
		}
		return packLoc{}, 0, fmt.Errorf("append to pack %s: %w", packName(loc.pack), err)
	}
	p.curSize += rl
	if kind == recKindShare {
		p.mu.Lock()
		p.live[loc.pack] += rl
		p.mu.Unlock()
	}
	p.smu.Lock()
	p.written++
	seq := p.written
	p.smu.Unlock()
	return loc, seq, nil
}

// append writes one record and returns once it is durable (group commit:
// one fdatasync covers every record appended before it started). A share
// record counts towards its pack's references from here on; the caller
// settles its claim.
func (p *packStore) append(kind byte, ref storage.Ref, data []byte) (packLoc, error) {
	p.amu.Lock()
	loc, seq, err := p.writeRecord(kind, ref, data)
	p.amu.Unlock()
	if err != nil {
		return packLoc{}, err
	}
	if err := p.waitDurable(seq); err != nil {
		if kind == recKindShare {
			p.mu.Lock()
			p.live[loc.pack] -= loc.recLen()
			p.mu.Unlock()
		}
		return packLoc{}, fmt.Errorf("sync pack %s: %w", packName(loc.pack), err)
	}
	return loc, nil
}

// pwriteAll writes bufs at off, going on after a short write: a file
// system that runs out of room mid-record writes what fits and says so
// only on the next call (ENOSPC), which callers map to ErrNoSpace.
func pwriteAll(f *os.File, bufs [][]byte, off int64) error {
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		n, err := pwritev(f, bufs, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite // no progress and no error: do not spin
		}
		off += int64(n)
		for n > 0 {
			k := min(n, len(bufs[0]))
			bufs[0] = bufs[0][k:]
			n -= k
			if len(bufs[0]) == 0 {
				bufs = bufs[1:]
			}
		}
	}
}

// waitDurable returns once record seq is durable. The first waiter to
// find no sync running leads a round (syncRound); the others wait for it
// and, if it did not cover them, lead the next one.
func (p *packStore) waitDurable(seq uint64) error {
	p.smu.Lock()
	defer p.smu.Unlock()
	for {
		if seq <= p.failedUpTo {
			return p.failErr
		}
		if seq <= p.synced {
			return nil
		}
		if p.syncing {
			p.cond.Wait()
			continue
		}
		p.syncRound()
	}
}

// syncRound is one group commit: it fdatasyncs the rolled packs not
// synced yet, oldest first, then the current pack, which covers every
// record written before the round started. Only one round runs at a
// time, and nothing else syncs a pack, so a failure is never overtaken
// by another sync's success. Called with smu held and no round running;
// returns with smu held.
func (p *packStore) syncRound() {
	p.syncing = true
	p.smu.Unlock()
	p.amu.Lock()
	f := p.cur
	p.smu.Lock()
	target := p.written
	todo := slices.Clone(p.rolled)
	done := max(p.synced, p.failedUpTo) // records settled already
	p.smu.Unlock()
	p.amu.Unlock()
	var err error
	for _, r := range todo {
		if r.upTo <= done {
			continue // synced while it was the current pack, or failed
		}
		err = packSync(r.f)
		p.syncs.Add(1)
		if err != nil {
			break
		}
	}
	if err == nil && target > done {
		if f == nil {
			err = os.ErrClosed
		} else {
			err = packSync(f)
			p.syncs.Add(1)
		}
	}
	if err != nil {
		// The kernel may have dropped the pages it could not write:
		// a later sync saying yes would not cover them. Every record so
		// far fails, not only those up to target: one appended while the
		// sync ran may share their pages, and the kernel reports a
		// writeback error to one sync only. Appends go to a new pack.
		p.amu.Lock()
		p.broken = true
		p.smu.Lock()
		target = p.written
		p.smu.Unlock()
		p.amu.Unlock()
	}
	p.smu.Lock()
	// Rolls only append to the list, and only a round takes from it.
	p.rolled = slices.Delete(p.rolled, 0, len(todo))
	p.syncing = false
	if err != nil {
		p.failedUpTo, p.failErr = max(p.failedUpTo, target), err
	} else if target > p.synced {
		p.synced = target
	}
	p.cond.Broadcast()
}

// waitRolled returns once pack n is not among the rolled packs still to
// sync (leading a round if none runs), so that its file may be closed.
// Called with none of amu, mu and smu held.
func (p *packStore) waitRolled(n uint32) {
	p.smu.Lock()
	defer p.smu.Unlock()
	for slices.ContainsFunc(p.rolled, func(r rolledPack) bool { return r.num == n }) {
		if p.syncing {
			p.cond.Wait()
			continue
		}
		p.syncRound()
	}
}

// mustRoll reports whether a record of rl bytes goes to a new pack:
// there is no current pack, it saw an error, or the record would take
// its records past rollAt bytes (a pack takes one record however long).
// Called with amu.
func (p *packStore) mustRoll(rl int64) bool {
	start := int64(0)
	if p.curCodec != nil {
		start = int64(p.curCodec.start)
	}
	return p.cur == nil || p.broken || (p.curSize > start && p.curSize-start+rl > p.rollAt)
}

// roll makes a new pack the current one. The old one is not synced
// here: it goes to the group commit's list of rolled packs (if a record
// in it may not be durable yet), whose next round syncs it. Called with
// amu.
func (p *packStore) roll() error {
	next := p.curNum + 1
	name := filepath.Join(p.dir, packName(next))
	hdr, codec, err := newPackHeader()
	if err != nil {
		return fmt.Errorf("new pack: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("new pack: %w", err)
	}
	// The header (copy A at 0, copy B at 4096, zeros to the first record
	// at 8192) needs no sync of its own: the group commit's fdatasync of
	// the first record covers it, and a pack whose header a crash cut
	// holds no record and is removed at open.
	if err := pwriteAll(f, [][]byte{hdr}, 0); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("new pack %s: %w", name, err)
	}
	if err := syncDir(p.dir); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("new pack: %w", err)
	}
	p.mu.Lock()
	p.files[next] = f
	p.codecs[next] = codec
	p.live[next] += 0
	p.mu.Unlock()
	if p.cur != nil {
		// A round running may be syncing it as the current pack; the
		// list keeps it open and the next round waits for that one.
		p.smu.Lock()
		if p.syncing || p.written > max(p.synced, p.failedUpTo) {
			p.rolled = append(p.rolled, rolledPack{num: p.curNum, f: p.cur, upTo: p.written})
		}
		p.smu.Unlock()
	}
	p.cur, p.curCodec, p.curNum, p.curSize, p.broken = f, codec, next, int64(codec.start), false
	return nil
}

// remove forgets a visible share after its tombstone is durable.
func (p *packStore) remove(ref storage.Ref) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(ref)
}

func (p *packStore) removeLocked(ref storage.Ref) {
	list := p.index[ref.Index]
	i := slices.IndexFunc(list, func(s packShare) bool { return s.num == ref.Num && s.committed })
	if i < 0 {
		return
	}
	p.live[list[i].loc.pack] -= list[i].loc.recLen()
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(p.index, ref.Index)
	} else {
		p.index[ref.Index] = list
	}
}

// reclaim removes packs that hold no live share, oldest first, and stops
// at the first that does (or at the current pack, or at a stuck one).
// Only the oldest pack may go this way: a tombstone in it can only
// concern records in it, while one in a later pack may still be needed to
// keep a share in an earlier pack deleted (compact carries those
// forward). Compacted packs whose removal failed (zombies) go first, in
// any place: their needed tombstones were carried already. A removal that
// fails again is logged and left for the next call.
func (p *packStore) reclaim() {
	for {
		p.amu.Lock()
		p.mu.Lock()
		n, oldest := uint32(0), uint32(0)
		for m := range p.files {
			if oldest == 0 || m < oldest {
				oldest = m
			}
			if p.zombie[m] && (n == 0 || m < n) {
				n = m
			}
		}
		if n == 0 {
			n = oldest
			if n == 0 || (p.cur != nil && n == p.curNum) || p.live[n] > 0 || p.stuck[n] {
				p.mu.Unlock()
				p.amu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		p.smu.Lock()
		toSync := slices.ContainsFunc(p.rolled, func(r rolledPack) bool { return r.num == n })
		p.smu.Unlock()
		if toSync { // the group commit may sync it: not closed under it
			p.amu.Unlock()
			p.waitRolled(n)
			continue
		}
		err := p.removePack(n)
		p.amu.Unlock()
		if err != nil {
			p.logf("storage disk: %v", err)
			return
		}
	}
}

// removePack removes pack n's file, makes the removal durable, and only
// then forgets the pack and closes its file. Should either step fail the
// pack stays in files, marked a zombie (reclaim tries again): while its
// file may still be on disk, compactions must go on carrying the
// tombstones that keep its shares deleted at the next open. The caller
// makes sure the group commit is done with it (waitRolled).
func (p *packStore) removePack(n uint32) error {
	name := filepath.Join(p.dir, packName(n))
	err := packRemove(name)
	if errors.Is(err, os.ErrNotExist) {
		err = nil // an earlier try removed it; its sync failed
	}
	if err == nil {
		err = syncDir(p.dir)
	}
	p.mu.Lock()
	f, ok := p.files[n]
	if err != nil {
		if ok {
			p.zombie[n] = true
		}
		p.mu.Unlock()
		return fmt.Errorf("remove pack %s: %w", packName(n), err)
	}
	delete(p.files, n)
	delete(p.live, n)
	delete(p.codecs, n)
	delete(p.zombie, n)
	delete(p.stuck, n)
	p.mu.Unlock()
	if ok {
		f.Close()
	}
	return nil
}

// appended is the count of records appended so far (tests).
func (p *packStore) appended() uint64 {
	p.smu.Lock()
	defer p.smu.Unlock()
	return p.written
}
