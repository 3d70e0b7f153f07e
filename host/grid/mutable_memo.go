package grid

// The slot memo: a Modify that starts from this client's own last write
// (or clean read) of a slot instead of reading the slot again.
//
// A Modify reads the slot on every server (a list and a read each: 2S
// calls, and the whole version's bytes) before it writes. When this client
// published the slot's current version a moment ago, it already knows what
// that read would find: its own version on every copy, with the tokens its
// writes got back. So after a publish with nothing odd about it (every
// server of the ring answered, no read or write failed, no stray slot, all
// N share numbers written) and after a read that found exactly one version
// on every slot, the client remembers, per slot and for MutableMemoTTL,
// the ring, every slot with its token, the version and its content. The
// next Modify of that slot takes the memo (one Modify at a time: taking
// it removes it), calls the function on the remembered content and
// publishes version seq+1 to the remembered slots with test-and-set on
// the remembered tokens, the lead first, exactly as after a read. Anything
// else falls back to the full path (read, wait out publishes in flight,
// decode): a conflict, any failed write, a ring that changed (a server
// joined or left: a new server may hold shares someone else placed), a
// seen version other than the memo's (rollback protection stays with the
// full read), and a function that returns its input unchanged or an error
// (nothing written, so nothing proved the remembered content current).
//
// Why a stale memo cannot lose another writer's acknowledged change:
//
//  1. Test-and-set. Every remembered token is one this client's own write
//     (or read) got back. Any later write to that slot by anyone changed
//     its token, so our write there is refused (errConflict).
//  2. Sequence numbers. The memo's version is seq s; a memo write carries
//     s+1. Any version built on ours or later has seq >= s+1, and every
//     storage node refuses to replace a valid share with one of the same
//     or a lower number and another id (mutable.ValidateSlotWrite). So
//     even a reused token (a slot removed and written again) cannot let a
//     memo write land on a share of such a version.
//  3. Lead first. The first writes go to the copies of the lowest share
//     number in ring order, one by one; a conflict there ends the publish
//     having written nothing (publish), as on the full path.
//  4. Completeness. A memo is made only when its map held every slot of
//     the index on every server of the ring (all answered, no read failed,
//     no slot past N) and every share number 0..N-1, and it is used only
//     with the same ring. Another writer B whose version was acknowledged
//     after our read wrote every copy it found; a copy it found among
//     ours changed token (1) or holds seq >= s+1 (2), so our publish
//     fails there and falls back. B finds none of ours only if it does
//     not know those servers or every read of them failed; with nested
//     server sets (what the lead protocol already assumes) B then read its
//     base from servers we do not know, a case where the full path loses
//     B's change too (we cannot see B's shares there). The one difference
//     left: B's placements on our servers for share numbers it found
//     nowhere, which a fresh read would see and a memo does not; it needs
//     every one of B's reads of our N slots to fail while its lists
//     succeed, and MutableMemoTTL bounds how long a memo can miss it.
//
// So a memo publish that succeeds is one the full path would have made on
// a read taken when the memo was made; the protocol already tolerates any
// delay between a writer's read and its writes (1-3 are what make that
// safe), and a function's result is acknowledged only after such writes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/mutable"
)

// MutableMemoTTL is how long after a publish or a clean read of a slot a
// Modify by the same client may start from what it knows instead of
// reading the slot again.
const MutableMemoTTL = time.Second

// memoTTL is MutableMemoTTL, changed only by tests.
var memoTTL atomic.Int64

func init() { memoTTL.Store(int64(MutableMemoTTL)) }

// Bounds of the memos a client holds (content and shares kept in memory
// for at most MutableMemoTTL).
const (
	memoMaxBytes = 16 << 20
	memoMaxSlots = 1024
)

// slotMemo is what this client knows of a slot right after writing or
// reading it: every slot of the index on the ring's servers with its
// token, all holding one version.
type slotMemo struct {
	ring   []string // node ids in ring order
	slots  []memoSlot
	header mutable.Header
	data   []byte           // the version's content (after a publish), or
	shares []*mutable.Share // its shares, decoded on use (after a read)
	bytes  int64
	timer  *time.Timer
}

type memoSlot struct {
	node  string // the server's node id
	num   int
	token string
}

// memos are a Client's slot memos.
type memos struct {
	mu    sync.Mutex
	m     map[cap.StorageIndex]*slotMemo
	bytes int64
}

// take removes and returns the memo of si, nil if none.
func (ms *memos) take(si cap.StorageIndex) *slotMemo {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	mm := ms.m[si]
	if mm != nil {
		ms.remove(si, mm)
	}
	return mm
}

// drop forgets the memo of si.
func (ms *memos) drop(si cap.StorageIndex) { ms.take(si) }

// remove must hold mu.
func (ms *memos) remove(si cap.StorageIndex, mm *slotMemo) {
	delete(ms.m, si)
	ms.bytes -= mm.bytes
	mm.timer.Stop()
}

// put keeps mm for si for MutableMemoTTL, unless a memo of a newer
// version is kept already (a slower operation finishing after a faster
// one) or the bounds are reached.
func (ms *memos) put(si cap.StorageIndex, mm *slotMemo) {
	if !memoEnabled || mm == nil {
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if old := ms.m[si]; old != nil {
		if old.header.Seq > mm.header.Seq {
			return
		}
		ms.remove(si, old)
	}
	if ms.bytes+mm.bytes > memoMaxBytes || len(ms.m) >= memoMaxSlots {
		return
	}
	if ms.m == nil {
		ms.m = map[cap.StorageIndex]*slotMemo{}
	}
	ms.m[si] = mm
	ms.bytes += mm.bytes
	mm.timer = time.AfterFunc(time.Duration(memoTTL.Load()), func() {
		ms.mu.Lock()
		defer ms.mu.Unlock()
		if ms.m[si] == mm {
			ms.remove(si, mm)
		}
	})
}

// memoOfPublish is the memo of a publish of v that left nothing unknown:
// every server of the ring answered the read, no read or write failed, no
// slot lies past N, and every share number 0..N-1 was written; data is
// v's content (kept as a copy: the caller keeps its own). nil otherwise.
func memoOfPublish(sm *slotMap, v *mutable.Version, data []byte) *slotMemo {
	h := v.Header
	if sm.failed > 0 || len(sm.later) > 0 || len(sm.problems) > 0 || slices.Contains(sm.up, false) {
		return nil
	}
	for _, e := range sm.entries {
		if e.num >= h.N || e.err != nil {
			return nil
		}
	}
	mm := &slotMemo{ring: ringIDs(sm.ring), header: h, data: bytes.Clone(data), bytes: int64(len(data))}
	have := make([]bool, h.N)
	for _, e := range sm.wrote {
		if e.token == "" || e.num >= h.N {
			return nil
		}
		have[e.num] = true
		mm.slots = append(mm.slots, memoSlot{node: e.srv.NodeID, num: e.num, token: e.token})
	}
	if slices.Contains(have, false) {
		return nil
	}
	return mm
}

// memoOfRead is the memo of a read that found one version, v, on every
// slot of every server of the ring, all N share numbers, and nothing else
// (no failure, no bad share, no stray slot). nil otherwise.
func memoOfRead(sm *slotMap, v *versionSet) *slotMemo {
	if v == nil || sm.answered != len(sm.ring) || sm.firstErr != nil || len(sm.later) > 0 || len(sm.problems) > 0 ||
		len(sm.versions) != 1 || sm.maxSeq != v.header.Seq || len(v.shares) != v.header.N {
		return nil
	}
	mm := &slotMemo{ring: ringIDs(sm.ring), header: v.header}
	for _, e := range sm.entries {
		if e.err != nil || e.share == nil || e.num >= v.header.N || e.token == "" || e.share.Header.ID() != v.id {
			return nil
		}
		mm.slots = append(mm.slots, memoSlot{node: e.srv.NodeID, num: e.num, token: e.token})
	}
	mm.shares = v.list()[:v.header.K] // enough to decode
	for _, s := range mm.shares {
		mm.bytes += int64(len(s.Block)) + 512
	}
	return mm
}

func ringIDs(r []Server) []string {
	out := make([]string, len(r))
	for i, s := range r {
		out[i] = s.NodeID
	}
	return out
}

// modifyFromMemo makes Modify's change from the memo of w's slot, if any:
// it reports ok only when it published. Otherwise (no memo, or it did not
// hold: see the file comment) the caller does the full Modify.
func (c *Client) modifyFromMemo(ctx context.Context, w cap.MutableWrite, modify func(old []byte) ([]byte, error)) (uint64, bool) {
	m := c.mut()
	si := w.StorageIndex()
	mm := m.memos.take(si)
	if mm == nil {
		return 0, false
	}
	miss := func(why string) (uint64, bool) {
		m.memoMisses.Add(1)
		c.log.Debug("slot memo not used, reading the slot", "slot", si.String(), "version", mm.header.Seq, "why", why)
		return 0, false
	}
	r := ring(si[:], c.servers())
	if !slices.Equal(ringIDs(r), mm.ring) {
		return miss("servers changed")
	}
	if len(m.hung.skip(r, time.Now())) > 0 {
		// Its writes would wait for the hung server up to the server
		// timeout; a read leaves it out (readMap).
		return miss("a server hung lately")
	}
	if seen, err := m.store().Seen(si); err != nil || seen != mm.header.Seq {
		return miss("another version seen")
	}
	old := mm.data
	if old == nil {
		var err error
		if old, err = c.decodeVersion(ctx, w.ReadCap(), &versionSet{header: mm.header, shares: sharesByNum(mm.shares)}); err != nil {
			return miss(err.Error())
		}
	}
	orig := bytes.Clone(old) // modify may change old in place
	next, err := modify(old)
	if err != nil || bytes.Equal(next, orig) {
		// Nothing would be written, so nothing would prove the
		// remembered content current: decide on a fresh read.
		return miss("nothing to write")
	}
	seq := mm.header.Seq + 1
	v, err := mutable.Encode(ctx, c.cfg.Codec, w, seq, mm.header.Params(), next)
	if err != nil {
		return miss(err.Error())
	}
	sm := newSlotMap(si, w.ReadCap().PublicKeyHash, r)
	sm.bounded = true
	sm.answered, sm.maxSeq = len(r), mm.header.Seq
	for i := range sm.up {
		sm.up[i] = true
	}
	pos := make(map[string]int, len(r))
	for i, s := range r {
		pos[s.NodeID] = i
	}
	for _, s := range mm.slots {
		i, ok := pos[s.node]
		if !ok {
			return miss("server gone")
		}
		sm.entries = append(sm.entries, &slotEntry{srv: r[i], pos: i, num: s.num, token: s.token})
	}
	if err := c.publish(ctx, sm, v); err != nil {
		if errors.Is(err, errConflict) {
			return miss("slot changed since: " + err.Error())
		}
		return miss(fmt.Sprintf("publish: %v", err))
	}
	m.memoHits.Add(1)
	c.record(si, seq)
	m.memos.put(si, memoOfPublish(sm, v, next))
	return seq, true
}

func sharesByNum(l []*mutable.Share) map[int]*mutable.Share {
	out := make(map[int]*mutable.Share, len(l))
	for _, s := range l {
		out[s.Num] = s
	}
	return out
}
