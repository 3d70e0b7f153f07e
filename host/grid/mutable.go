package grid

// Mutable files over the grid: create, read, modify, verify and repair
// slots in the format of host/mutable. docs/formats.md ("Mutable files") has the format
// and the write protocol; in short:
//
//   - A read builds a servermap: it asks every known server which slots it
//     holds at the storage index (ListSlots, a tiny call), reads only the
//     slots that exist, keeps the shares that verify, and takes the highest
//     version that has K shares. Where shares live is thus found, never
//     computed, so clients that know different servers agree on it.
//   - A modify reads so, applies the caller's function to the content, and
//     writes version max+1 to every copy of every share number where it was
//     found, with test-and-set on the token it read, the lead first and the
//     others after it. A share number found nowhere goes to its placement
//     target: the first server from ring position s mod S that answered
//     and holds nothing of the slot yet. Any conflict means another writer
//     got in: it re-reads and applies the function again, after a random
//     back-off, so no update is lost.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/mutable"
	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageclient"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Mutable-file errors callers branch on (errors.Is), beside ErrNotReadable
// and ErrNotHappy.
var (
	// ErrRollback: the servers offer an older version than this client has
	// seen (mutable.ErrRollback).
	ErrRollback = mutable.ErrRollback
	// ErrNoSlot: no share of the slot was found on any server.
	ErrNoSlot = errors.New("mutable file not found on any server")
	// ErrNotWritable: the cap does not allow writing.
	ErrNotWritable = errors.New("cap cannot write")
	// ErrContention: a modify kept losing to other writers until it gave up.
	ErrContention = errors.New("mutable file changed by others on every attempt")
	// ErrMutableTooLarge: content over the mutable size limit
	// (mutable.ErrTooLarge).
	ErrMutableTooLarge = mutable.ErrTooLarge
	// ErrMutableNotEnoughShares: no version of the file has K good shares
	// on the servers that answered (mutable.ErrNotEnoughShares).
	ErrMutableNotEnoughShares = mutable.ErrNotEnoughShares
)

// errConflict marks a publish that lost a test-and-set race.
var errConflict = errors.New("slot changed since it was read")

// Mutable-write tuning.
const (
	// MutableMaxAttempts bounds how many times a Modify applies its
	// function after losing races.
	MutableMaxAttempts = 200
	// MutableStaleWait is how long, at least, a Modify waits after the
	// last change of a newer version that is not yet readable (another
	// writer in the middle of a publish) before writing over it as
	// abandoned; it is never shorter than the client's ServerTimeout. A
	// read waits as long when no version is readable yet shares exist.
	MutableStaleWait = 5 * time.Second
	// MutableMaxWait bounds all waiting of one read or attempt.
	MutableMaxWait = time.Minute
	// MutableLagWait is how long a Modify waits while some share number of
	// the current version has copies but none holding it (the rest of a
	// publish in flight, or servers that missed versions: the next
	// publish repairs them).
	MutableLagWait = 250 * time.Millisecond
	// MutableGraceMin and MutableGraceFactor make the grace a slot map
	// gives servers that have not answered once the others prove it
	// current enough (readMap): MutableGraceFactor times the slowest
	// answer so far, at least MutableGraceMin (or a quarter of the server
	// timeout, if shorter).
	MutableGraceMin    = time.Second
	MutableGraceFactor = 4
)

// MutableStats are counters of a Client's mutable-file work.
type MutableStats struct {
	Creates, Modifies, Reads int64
	// Published counts versions written.
	Published int64
	// Conflicts counts slot writes refused by test-and-set (another writer
	// changed the slot); Retries counts Modify attempts redone after one.
	Conflicts, Retries int64
	// Refused counts slot writes a server refused as not validly signed or
	// not newer.
	Refused int64
	// Corrupt counts shares that failed a check.
	Corrupt int64
	// MemoHits counts Modifies published from the slot memo (this
	// client's last write or read of the slot, without reading it again);
	// MemoMisses counts memos taken but not used (the slot changed, a
	// write failed, the servers changed...: the Modify read the slot).
	MemoHits, MemoMisses int64
	// EarlyMaps counts slot maps used without waiting for every server
	// (some hung, and those that answered proved the map current enough:
	// docs/formats.md, "Reading while a server hangs"); NotWaited counts
	// the servers such maps left out or did not ask.
	EarlyMaps, NotWaited int64
}

// mutState is a Client's mutable-file state, kept beside the Client (it is
// collected with it) so that grid.go stays as it is.
type mutState struct {
	mu   sync.Mutex
	seen mutable.SeenStore

	creates, modifies, reads, published      atomic.Int64
	conflicts, retries, refused, corruptSeen atomic.Int64

	memos                memos
	memoHits, memoMisses atomic.Int64

	hung                 hungServers
	earlyMaps, hungSkips atomic.Int64
}

var mutStates sync.Map // weak.Pointer[Client] -> *mutState

func (c *Client) mut() *mutState {
	wp := weak.Make(c)
	if v, ok := mutStates.Load(wp); ok {
		return v.(*mutState)
	}
	v, loaded := mutStates.LoadOrStore(wp, &mutState{seen: mutable.NewMemorySeen()})
	if !loaded {
		runtime.AddCleanup(c, func(wp weak.Pointer[Client]) { mutStates.Delete(wp) }, wp)
	}
	return v.(*mutState)
}

func (m *mutState) store() mutable.SeenStore {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen
}

// SetSeenStore makes the client remember the versions it has seen in s
// (for instance a mutable.FileSeen in the node folder, so rollback
// protection survives restarts) instead of in memory. Call it before the
// first mutable operation.
func (c *Client) SetSeenStore(s mutable.SeenStore) {
	m := c.mut()
	m.mu.Lock()
	m.seen = s
	m.mu.Unlock()
}

// MutableStats returns the mutable-file counters.
func (c *Client) MutableStats() MutableStats {
	m := c.mut()
	return MutableStats{
		Creates: m.creates.Load(), Modifies: m.modifies.Load(), Reads: m.reads.Load(),
		Published: m.published.Load(), Conflicts: m.conflicts.Load(), Retries: m.retries.Load(),
		Refused: m.refused.Load(), Corrupt: m.corruptSeen.Load(),
		MemoHits: m.memoHits.Load(), MemoMisses: m.memoMisses.Load(),
		EarlyMaps: m.earlyMaps.Load(), NotWaited: m.hungSkips.Load(),
	}
}

// MutableMaxSize is the largest content a mutable file made by this client
// may hold: K times a little under the 1 MiB slot limit (3,144,576 bytes at
// 3-of-10).
func (c *Client) MutableMaxSize() int64 {
	return mutable.MaxSize(codec.Params{K: c.cfg.K, N: c.cfg.N})
}

// CreateMutable makes a new mutable file holding initial (version 1) and
// returns its write cap.
func (c *Client) CreateMutable(ctx context.Context, initial []byte) (cap.MutableWrite, error) {
	m := c.mut()
	m.creates.Add(1)
	w, err := cap.NewMutableWrite()
	if err != nil {
		return w, err
	}
	si := w.StorageIndex()
	v, err := mutable.Encode(ctx, c.cfg.Codec, w, 1, codec.Params{K: c.cfg.K, N: c.cfg.N}, initial)
	if err != nil {
		return w, fmt.Errorf("create mutable file: %w", err)
	}
	// A fresh key owns an empty index: nothing is listed or read, every
	// server counts as answered with nothing, and every share goes to its
	// placement target with "must not exist".
	sm := newSlotMap(si, [cap.PublicKeyHashSize]byte{}, ring(si[:], c.servers()))
	if len(sm.ring) == 0 {
		return w, fmt.Errorf("create mutable file %s: no storage servers known", si)
	}
	// Servers remembered as hung (readMap), or announced too full for a
	// share (upload_room.go), are left out, unless too few would be left
	// to reach happiness.
	happy := min(max(c.cfg.K, c.cfg.H), c.cfg.N, len(sm.ring))
	var need int64
	if len(v.Shares) > 0 {
		need = int64(len(v.Shares[0]))
	}
	skip := leaveOut(len(sm.ring), happy, c.mut().hung.skip(sm.ring, time.Now()), roomless(sm.ring, need, happy), nil)
	for i := range sm.up {
		sm.up[i] = !skip[i]
	}
	sm.fresh, sm.bounded = true, true
	if err := c.publish(ctx, sm, v); err != nil {
		return w, fmt.Errorf("create mutable file %s: %w", si, err)
	}
	c.record(si, 1)
	return w, nil
}

// ReadMutable returns the newest readable version of a mutable file and
// its sequence number. cp is a write or read cap. It never returns a
// version older than one this client has seen (ErrRollback).
func (c *Client) ReadMutable(ctx context.Context, cp cap.Cap) ([]byte, uint64, error) {
	c.mut().reads.Add(1)
	rc, ok := readCapOf(cp)
	if !ok {
		return nil, 0, fmt.Errorf("read mutable file: %s cap: %w", cp.Kind(), ErrNotReadable)
	}
	si := rc.StorageIndex()
	sm, best, err := c.settled(ctx, si, rc.PublicKeyHash, false)
	if err != nil {
		return nil, 0, err
	}
	data, err := c.decodeVersion(ctx, rc, best)
	if err != nil {
		return nil, 0, err
	}
	c.record(si, best.header.Seq)
	c.mut().memos.put(si, memoOfRead(sm, best))
	return data, best.header.Seq, nil
}

// Modify changes a mutable file: it reads the newest version, calls modify
// with its content and publishes what modify returns as the next version.
// When another writer changed the file in between, the servers refuse the
// stale write, and Modify reads again and calls modify again on the newer
// content, so that no update is lost. modify may thus be called several
// times, and after a lost race it may see content that already holds its
// own change (another writer built on a version it wrote part of): it must
// be idempotent, computing its change from the content it is given (add
// entry X if absent, not append blindly). Returning the content unchanged
// (bytes.Equal) writes nothing; an error from modify ends Modify with that
// error. It returns the sequence number of the version now current.
func (c *Client) Modify(ctx context.Context, w cap.MutableWrite, modify func(old []byte) ([]byte, error)) (uint64, error) {
	m := c.mut()
	m.modifies.Add(1)
	si := w.StorageIndex()
	rc := w.ReadCap()
	if seq, ok := c.modifyFromMemo(ctx, w, modify); ok {
		return seq, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("modify mutable file %s: %w", si, err)
	}
	for attempt := 0; ; attempt++ {
		if attempt >= MutableMaxAttempts {
			return 0, fmt.Errorf("modify mutable file %s: %d attempts: %w", si, attempt, ErrContention)
		}
		sm, best, err := c.settled(ctx, si, rc.PublicKeyHash, true)
		if err != nil {
			return 0, err
		}
		old, err := c.decodeVersion(ctx, rc, best)
		if err != nil {
			return 0, err
		}
		orig := bytes.Clone(old) // modify may change old in place
		next, err := modify(old)
		if err != nil {
			return 0, err
		}
		// Unchanged content is the end, unless another version of the
		// same number holds shares too: two writers whose leads did not
		// meet (see publish) may each see its own as current, so a new
		// version settles which one is.
		if bytes.Equal(next, orig) && sm.maxSeq == best.header.Seq && !sm.torn(best) {
			c.record(si, best.header.Seq)
			m.memos.put(si, memoOfRead(sm, best))
			return best.header.Seq, nil
		}
		seen, _ := c.mut().store().Seen(si)
		seq := max(sm.maxSeq, seen) + 1
		v, err := mutable.Encode(ctx, c.cfg.Codec, w, seq, best.header.Params(), next)
		if err != nil {
			return 0, fmt.Errorf("modify mutable file %s: %w", si, err)
		}
		err = c.publish(ctx, sm, v)
		if err == nil {
			c.record(si, seq)
			m.memos.put(si, memoOfPublish(sm, v, next))
			return seq, nil
		}
		if !errors.Is(err, errConflict) {
			return 0, fmt.Errorf("modify mutable file %s: %w", si, err)
		}
		m.retries.Add(1)
		c.log.Debug("mutable write lost a race, retrying", "slot", si.String(), "version", seq, "attempt", attempt+1)
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return 0, fmt.Errorf("modify mutable file %s: %w", si, err)
		}
	}
}

// Overwrite replaces a mutable file's content whatever it was.
func (c *Client) Overwrite(ctx context.Context, w cap.MutableWrite, data []byte) (uint64, error) {
	return c.Modify(ctx, w, func([]byte) ([]byte, error) { return data, nil })
}

// MutableCheck is what VerifyMutable found.
type MutableCheck struct {
	// Seq, K, N describe the current version (the newest with K good
	// shares); Seq is 0 when there is none.
	Seq  uint64
	K, N int
	// Good is the distinct good shares of the current version found;
	// Missing lists its share numbers found nowhere.
	Good    int
	Missing []int
	// Servers is how many distinct servers hold its good shares.
	Servers int
	// Others counts good shares of other versions by sequence number.
	Others map[uint64]int
	// Problems describes every share that failed a check.
	Problems []string
	// Healthy: every share number has a copy of the current version,
	// every copy found holds it, no newer partial version exists, and no
	// share failed a check.
	Healthy bool
}

// VerifyMutable checks a mutable file with any of its caps (a verify cap
// is enough): it lists the slots of every server, reads them all, checks
// every share's signature and proof, and rebuilds the current version's
// ciphertext from K shares to check the signed hash. It changes nothing.
func (c *Client) VerifyMutable(ctx context.Context, cp cap.Cap) (*MutableCheck, error) {
	pkh, err := pkhOf(cp)
	if err != nil {
		return nil, fmt.Errorf("verify mutable file: %w", err)
	}
	sm, err := c.readMap(ctx, cap.MutableStorageIndexOf(pkh), pkh, false, 0)
	if err != nil {
		return nil, err
	}
	return c.check(ctx, sm)
}

// check sums up a full slot map.
func (c *Client) check(ctx context.Context, sm *slotMap) (*MutableCheck, error) {
	out := &MutableCheck{Others: map[uint64]int{}, Problems: slices.Clone(sm.problems)}
	best := sm.best()
	for _, vs := range sm.versions {
		if vs != best {
			out.Others[vs.header.Seq] += len(vs.shares)
		}
	}
	if best == nil {
		if sm.answered == 0 {
			return nil, fmt.Errorf("verify mutable file %s: %w: no server answered (%d asked; %v)", sm.si, ErrMutableNotEnoughShares, len(sm.ring), sm.firstErr)
		}
		if len(sm.versions) == 0 && len(sm.problems) == 0 {
			return nil, fmt.Errorf("verify mutable file %s: %w", sm.si, ErrNoSlot)
		}
		return out, nil
	}
	out.Seq, out.K, out.N, out.Good = best.header.Seq, best.header.K, best.header.N, len(best.shares)
	servers := map[string]bool{}
	for _, e := range best.entries {
		servers[e.srv.NodeID] = true
	}
	out.Servers = len(servers)
	for s := 0; s < best.header.N; s++ {
		if best.shares[s] == nil {
			out.Missing = append(out.Missing, s)
		}
	}
	if _, _, err := mutable.DecodeCiphertext(ctx, c.cfg.Codec, best.list()); err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("version %d: %v", best.header.Seq, err))
	}
	out.Healthy = len(out.Missing) == 0 && len(out.Problems) == 0 && sm.maxSeq == best.header.Seq && !sm.lagging(best)
	return out, nil
}

// MutableRepair is what RepairMutable did.
type MutableRepair struct {
	// Before is the check that decided what to write.
	Before *MutableCheck
	// Written lists the share numbers written (each once, sorted): to
	// copies that held an older version or a corrupt share, and to the
	// placement targets of share numbers found nowhere.
	Written []int
	// Failed describes copies that could not take their share
	// (unreachable, or holding a newer version).
	Failed []string
	// Republished is the version number the current content was published
	// again under, when copies held an unfinished newer version and the
	// cap could write (0 otherwise); Written then lists every share.
	Republished uint64
	// LeftOutFull are the servers (node ids, sorted) left out of the
	// targets of share numbers found nowhere because they announced too
	// little free space for a share, while enough others answered.
	LeftOutFull []string
}

// RepairMutable checks a mutable file like VerifyMutable and writes the
// current version's share to every copy that lacks it (older, corrupt),
// and each share number found nowhere to its placement target. It needs
// no write cap: the shares are rebuilt byte-identical from K good ones,
// signature included. A file with no readable version cannot be repaired
// (ErrMutableNotEnoughShares).
func (c *Client) RepairMutable(ctx context.Context, cp cap.Cap) (*MutableRepair, error) {
	pkh, err := pkhOf(cp)
	if err != nil {
		return nil, fmt.Errorf("repair mutable file: %w", err)
	}
	si := cap.MutableStorageIndexOf(pkh)
	c.mut().memos.drop(si) // it rewrites slots
	sm, err := c.readMap(ctx, si, pkh, false, 0)
	if err != nil {
		return nil, err
	}
	before, err := c.check(ctx, sm)
	if err != nil {
		return nil, err
	}
	out := &MutableRepair{Before: before}
	best := sm.best()
	if best == nil {
		return out, fmt.Errorf("repair mutable file %s: %w: no version has K good shares", si, ErrMutableNotEnoughShares)
	}
	shares, err := mutable.Rebuild(ctx, c.cfg.Codec, best.list())
	if err != nil {
		return out, fmt.Errorf("repair mutable file %s: %w", si, err)
	}
	for _, e := range sm.entries {
		if e.err != nil && e.num < best.header.N {
			out.Failed = append(out.Failed, fmt.Sprintf("share %d: server %s: %v", e.num, e.srv.NodeID, e.err))
		}
	}
	// Share numbers found nowhere go to servers with room for one, as an
	// upload's and an immutable repair's do (leaveFull).
	happy := min(max(best.header.K, c.cfg.H), best.header.N, len(sm.ring))
	var need int64
	if len(shares) > 0 {
		need = int64(len(shares[0]))
	}
	full := sm.leaveFull(need, happy)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.cfg.Parallel)
	var newer []string // copies holding a newer version (none took ours)
	for _, e := range sm.targets(best.header.N) {
		if e.token == "" && e.share == nil {
			out.LeftOutFull = full // a share number placed: they were left out of it
		}
		switch {
		case e.share != nil && e.share.Header.ID() == best.id:
			continue
		case e.share != nil && e.share.Header.Seq > best.header.Seq:
			newer = append(newer, fmt.Sprintf("share %d: server %s holds newer version %d", e.num, e.srv.NodeID, e.share.Header.Seq))
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := c.writeSlot(ctx, sm.si, e, shares[e.num])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Failed = append(out.Failed, fmt.Sprintf("share %d: server %s: %v", e.num, e.srv.NodeID, err))
				return
			}
			out.Written = append(out.Written, e.num)
		}()
	}
	wg.Wait()
	if len(newer) > 0 {
		// A newer version that never reached K shares (its writer died
		// mid-publish) holds some slots, and servers refuse to put an
		// older version back there. With the write cap, publish the
		// current content again as a newer version everywhere: Modify
		// first waits out the unfinished version as any writer does, so
		// a live writer is not trampled (and if that writer finishes
		// meanwhile, Modify writes nothing and its version stands).
		if w, err := MutableWriteCap(cp); err == nil {
			seq, err := c.Modify(ctx, w, func(old []byte) ([]byte, error) { return old, nil })
			switch {
			case err != nil:
				newer = append(newer, fmt.Sprintf("publish the current version again: %v", err))
			case seq > sm.maxSeq: // above the unfinished one: all slots moved on
				out.Republished, newer = seq, nil
				out.Written = out.Written[:0]
				for n := range best.header.N {
					out.Written = append(out.Written, n)
				}
			}
		}
		out.Failed = append(out.Failed, newer...)
	}
	slices.Sort(out.Written)
	out.Written = slices.Compact(out.Written)
	slices.Sort(out.Failed)
	return out, nil
}

// MutableWriteCap returns cp as a mutable write cap, or ErrNotWritable
// for a read or verify cap (and a plain error for other kinds).
func MutableWriteCap(cp cap.Cap) (cap.MutableWrite, error) {
	switch v := cp.(type) {
	case cap.MutableWrite:
		return v, nil
	case cap.MutableRead, cap.MutableVerify:
		return cap.MutableWrite{}, fmt.Errorf("%s cap: %w", cp.Kind(), ErrNotWritable)
	}
	return cap.MutableWrite{}, fmt.Errorf("%s cap is not a mutable cap", cp.Kind())
}

func pkhOf(cp cap.Cap) ([cap.PublicKeyHashSize]byte, error) {
	switch v := cp.(type) {
	case cap.MutableWrite:
		return v.ReadCap().PublicKeyHash, nil
	case cap.MutableRead:
		return v.PublicKeyHash, nil
	case cap.MutableVerify:
		return v.PublicKeyHash, nil
	}
	return [cap.PublicKeyHashSize]byte{}, fmt.Errorf("%s cap is not a mutable cap", cp.Kind())
}

func readCapOf(cp cap.Cap) (cap.MutableRead, bool) {
	switch v := cp.(type) {
	case cap.MutableWrite:
		return v.ReadCap(), true
	case cap.MutableRead:
		return v, true
	}
	return cap.MutableRead{}, false
}

// maxSlotNum bounds the slot numbers a map reads: share numbers are below
// 256 (N <= 256), so a server listing more is not asked for them.
// Numbers from this client's N up are read only as far as a version found
// reaches (readMap).
const maxSlotNum = 256

// slotEntry is one slot of one server: a copy of share num.
type slotEntry struct {
	srv   Server
	pos   int // the server's position on the ring
	num   int
	token string         // the value's token; "" when the slot does not exist
	share *mutable.Share // the share, if it verified
	err   error          // the read failed: the token is unknown
}

// versionSet is the good shares of one version.
type versionSet struct {
	header  mutable.Header
	id      [tagged.Size]byte
	shares  map[int]*mutable.Share
	entries []*slotEntry
}

func (v *versionSet) list() []*mutable.Share {
	out := make([]*mutable.Share, 0, len(v.shares))
	for s := 0; s < v.header.N; s++ {
		if sh := v.shares[s]; sh != nil {
			out = append(out, sh)
		}
	}
	return out
}

// slotMap is what a read found of a slot on the grid (Tahoe-LAFS calls it
// a servermap): which servers answered and every slot they hold.
type slotMap struct {
	si      cap.StorageIndex
	pkh     [cap.PublicKeyHashSize]byte
	ring    []Server
	up      []bool       // by ring position: the server answered ListSlots
	entries []*slotEntry // every slot found, by share number, then ring position
	held    map[int]int  // by ring position: slots held or given (targets, place)
	later   []*slotEntry // listed slots past every N found: not read
	// versions holds the good shares of each version found.
	versions map[[tagged.Size]byte]*versionSet
	maxSeq   uint64
	answered int   // servers that answered
	firstErr error // of the calls that failed
	problems []string
	// Set by publish: the slots written (with their new tokens), and how
	// many targets failed or could not be written.
	wrote  []*slotEntry
	failed int
	// bounded: each write gets the server timeout (a map from the slot
	// memo: its servers were not asked just now whether they answer).
	bounded bool
	// fresh: the map of a new slot (CreateMutable): no one else can
	// write it, so writes need no lead.
	fresh bool
	// complete counts the servers that answered in full: listed, and
	// every slot listed read and verified (readMap's quorum).
	complete int
	// sealed: readMap is done with the map; answers that come later are
	// left out.
	sealed bool
	// full: ring positions announced too full for a share (leaveFull):
	// place picks them only when no other server answered.
	full map[int]bool
	mu   sync.Mutex
}

func newSlotMap(si cap.StorageIndex, pkh [cap.PublicKeyHashSize]byte, servers []Server) *slotMap {
	return &slotMap{si: si, pkh: pkh, ring: servers, up: make([]bool, len(servers)),
		versions: map[[tagged.Size]byte]*versionSet{}}
}

// best is the current version: the highest sequence number among versions
// with K good shares; a tie (racing writers) goes to the version with more
// shares, then to the higher ID, so every reader picks the same one.
func (sm *slotMap) best() *versionSet {
	var b *versionSet
	for _, v := range sm.versions {
		if len(v.shares) < v.header.K {
			continue
		}
		switch {
		case b == nil, v.header.Seq > b.header.Seq:
			b = v
		case v.header.Seq == b.header.Seq && (len(v.shares) > len(b.shares) ||
			len(v.shares) == len(b.shares) && bytes.Compare(v.id[:], b.id[:]) > 0):
			b = v
		}
	}
	return b
}

// current picks the version a read or modify uses, applying rollback
// protection against seen: the highest version this client had seen
// before it read the slot. (Read after, it may include one of this
// client's own publishes that landed during the read, and a sound read
// would be taken for a rollback.)
func (c *Client) current(sm *slotMap, seen uint64) (*versionSet, error) {
	best := sm.best()
	if best == nil {
		if sm.answered == 0 {
			return nil, fmt.Errorf("mutable file %s: %w: no server answered (%d asked; %v)", sm.si, ErrMutableNotEnoughShares, len(sm.ring), sm.firstErr)
		}
		if len(sm.versions) == 0 && len(sm.problems) == 0 && seen == 0 {
			return nil, fmt.Errorf("mutable file %s: %w (asked %d servers)", sm.si, ErrNoSlot, len(sm.ring))
		}
		return nil, fmt.Errorf("mutable file %s: %w: no version has K good shares (newest seen on the grid %d; %d problems%s)",
			sm.si, ErrMutableNotEnoughShares, sm.maxSeq, len(sm.problems), firstProblem(sm.problems))
	}
	if best.header.Seq < seen {
		return nil, fmt.Errorf("mutable file %s: servers offer version %d, this client has seen version %d: %w",
			sm.si, best.header.Seq, seen, ErrRollback)
	}
	return best, nil
}

// settled reads the slot until what it finds is not in the middle of a
// publish. A read that finds no version with K shares, though valid shares
// exist, may have caught writers half-way (several versions each on a few
// shares): it reads again until nothing has changed for MutableStaleWait
// (at least the server timeout). A writer (forWrite) also waits so while a
// newer version lacks K shares, and up to MutableLagWait while a share
// number has copies but none of the current version (inFlight), so that
// it does not write on top of a publish in progress
// (which would only make one of the two lose a race). Past the wait, what
// is there is taken as it is: an unfinished newer version counts as
// abandoned, and the next publish overwrites it.
func (c *Client) settled(ctx context.Context, si cap.StorageIndex, pkh [cap.PublicKeyHashSize]byte, forWrite bool) (*slotMap, *versionSet, error) {
	// An unfinished publish is waited out for as long as it makes progress
	// (what the slots hold changes), and for staleWait after its last
	// change: at least the server timeout, since a live writer's requests
	// end by then. Taking a live publish for abandoned too early lets two
	// writers tear the newest version apart.
	staleWait := max(MutableStaleWait, c.cfg.ServerTimeout)
	began, changed := time.Now(), time.Now()
	last := ""
	for attempt := 0; ; attempt++ {
		seen, err := c.mut().store().Seen(si)
		if err != nil {
			return nil, nil, fmt.Errorf("mutable file %s: seen versions: %w", si, err)
		}
		sm, err := c.readMap(ctx, si, pkh, forWrite, seen)
		if err != nil {
			return nil, nil, err
		}
		if fp := sm.fingerprint(); fp != last {
			last, changed = fp, time.Now()
		}
		best, err := c.current(sm, seen)
		var waited time.Duration // how long this state has been waited out
		var wait time.Duration   // and may be
		switch {
		case err != nil:
			if errors.Is(err, ErrMutableNotEnoughShares) && sm.maxSeq > 0 {
				waited, wait = time.Since(changed), staleWait
			}
		case forWrite && sm.maxSeq > best.header.Seq:
			// A reader may answer with the current version while a newer
			// one is being published; a writer would only collide with it.
			waited, wait = time.Since(changed), staleWait
		case forWrite && sm.inFlight(best):
			waited, wait = time.Since(began), MutableLagWait
		}
		if wait == 0 {
			return sm, best, err
		}
		if waited >= wait || time.Since(began) >= MutableMaxWait {
			if err != nil {
				return nil, nil, err
			}
			if wait == MutableLagWait {
				c.log.Debug("copies of a mutable file still lag, going on", "slot", si.String(), "current", best.header.Seq)
			} else {
				c.log.Warn("newer version of a mutable file unfinished, taking it as abandoned", "slot", si.String(), "newest", sm.maxSeq, "current", best.header.Seq)
			}
			return sm, best, nil
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, nil, fmt.Errorf("mutable file %s: %w", si, err)
		}
	}
}

// maxN is the largest N among the versions found.
func (sm *slotMap) maxN() int {
	n := 0
	for _, v := range sm.versions {
		n = max(n, v.header.N)
	}
	return n
}

// fingerprint names what the slots hold, to tell a publish in progress
// (it changes) from an abandoned one (it does not).
func (sm *slotMap) fingerprint() string {
	var b strings.Builder
	for _, e := range sm.entries {
		switch {
		case e.share != nil:
			id := e.share.Header.ID()
			fmt.Fprintf(&b, "%d@%s:%x ", e.num, e.srv.NodeID, id[:8])
		case e.err == nil:
			fmt.Fprintf(&b, "%d@%s:%q ", e.num, e.srv.NodeID, e.token)
		}
	}
	return b.String()
}

// inFlight reports whether some share number of version v has copies on
// servers that answered but none holding v: how a publish of v still under
// way looks. (Copies that lag while another copy of their share number
// holds v are not waited for: they may be on servers the last writer does
// not know, and the next publish updates them.)
func (sm *slotMap) inFlight(v *versionSet) bool {
	for _, e := range sm.entries {
		if e.num < v.header.N && e.err == nil && v.shares[e.num] == nil {
			return true
		}
	}
	return false
}

// torn reports whether another version with v's sequence number holds a
// share: writers raced and both got versions in.
func (sm *slotMap) torn(v *versionSet) bool {
	for _, o := range sm.versions {
		if o != v && o.header.Seq == v.header.Seq {
			return true
		}
	}
	return false
}

// lagging reports whether a copy of a share of version v, on a server that
// answered, holds something other than v (an older or racing version, or
// a bad share).
func (sm *slotMap) lagging(v *versionSet) bool {
	for _, e := range sm.entries {
		if e.num < v.header.N && e.err == nil && (e.share == nil || e.share.Header.ID() != v.id) {
			return true
		}
	}
	return false
}

func firstProblem(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return ": " + p[0]
}

func (c *Client) record(si cap.StorageIndex, seq uint64) {
	if err := c.mut().store().Record(si, seq); err != nil {
		c.log.Error("record seen mutable version", "slot", si.String(), "version", seq, "error", err)
	}
}

func (c *Client) decodeVersion(ctx context.Context, rc cap.MutableRead, v *versionSet) ([]byte, error) {
	data, err := mutable.Decode(ctx, c.cfg.Codec, rc, v.list())
	if err != nil {
		return nil, fmt.Errorf("mutable file %s: %w", rc.StorageIndex(), err)
	}
	return data, nil
}

// readMap builds the slot map: it lists the slots of the known servers in
// parallel and reads the slots that exist. A server that fails to list
// counts as not answered; one that predates ListSlots is asked for slots
// 0..N-1 of this client's N instead.
//
// It does not always wait for every server. Once the servers that have
// answered in full prove the map current enough (mayStop: a quorum of
// them, the newest version they hold readable and not torn) and the
// others have had a grace (mutableGrace: four times the slowest answer so
// far, at least min(1 s, ServerTimeout/4)), it stops: the requests still
// out are cancelled and what they would have added is left out, as if
// those servers had not answered. Servers left out so are remembered as
// hung for a server timeout, and later maps do not ask them while the
// others can still make a quorum. Without a quorum every server is asked
// and waited for, up to the server timeout, as before.
// docs/formats.md ("Reading while a server hangs") has the rule and why
// it is safe.
//
// seen is the newest version this client has seen of the slot (0 for
// none): a map whose newest readable version is older does not stop
// early, since the servers still out may hold it (rather than report a
// rollback while they might answer).
func (c *Client) readMap(ctx context.Context, si cap.StorageIndex, pkh [cap.PublicKeyHashSize]byte, write bool, seen uint64) (*slotMap, error) {
	sm := newSlotMap(si, pkh, ring(si[:], c.servers()))
	S := len(sm.ring)
	if S == 0 {
		return nil, fmt.Errorf("mutable file %s: no storage servers known", si)
	}
	m := c.mut()
	start := time.Now()
	// Servers that hung in a recent map are not asked while the others
	// can still make a quorum (of this client's K and N: a version of
	// other parameters may need more, and is then waited for as usual).
	skip := m.hung.skip(sm.ring, start)
	if S-len(skip) < quorum(write, S, c.cfg.K, c.cfg.N) {
		skip = nil
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the requests of servers not waited for
	done := make(chan int, S)
	sem := make(chan struct{}, c.cfg.Parallel)
	pending := 0
	ask := func(i int) {
		pending++
		go func() {
			select {
			case sem <- struct{}{}:
				c.mapServer(mctx, sm, i)
				<-sem
			case <-mctx.Done():
			}
			done <- i
		}()
	}
	for i := range sm.ring {
		if !skip[i] {
			ask(i)
		}
	}
	var (
		last   time.Duration // when the latest server was done
		timer  *time.Timer
		timerC <-chan time.Time
		early  bool
	)
	finished := make([]bool, S)
	for pending > 0 && !early {
		select {
		case i := <-done:
			pending--
			finished[i] = true
			last = time.Since(start)
		case <-timerC:
		case <-ctx.Done():
			sm.seal()
			if timer != nil {
				timer.Stop()
			}
			return nil, fmt.Errorf("mutable file %s: %w", si, ctx.Err())
		}
		ok := sm.mayStop(write, c.cfg.K, c.cfg.N, seen)
		wait := c.mutableGrace(last) - time.Since(start)
		switch {
		case pending == 0 && (ok || len(skip) == 0):
			continue // every server asked has answered
		case ok && wait <= 0:
			early = sm.seal()
			continue
		case !ok && len(skip) > 0 && (pending == 0 || wait <= 0):
			// What the others answered proves nothing without the
			// servers left out as hung (or not yet): ask them too, and
			// wait as usual.
			for i := range skip {
				ask(i)
			}
			skip = nil
			continue
		case !ok && len(skip) == 0:
			continue // wait for more answers
		}
		if timer != nil {
			timer.Stop()
		}
		timer = time.NewTimer(wait)
		timerC = timer.C
	}
	if len(skip) > 0 {
		m.hungSkips.Add(int64(len(skip)))
		c.log.Debug("mutable read skipped servers that hung lately", "slot", si.String(), "skipped", len(skip), "servers", S)
	}
	if timer != nil {
		timer.Stop()
	}
	if early {
		var gave []string
		for i, s := range sm.ring {
			if !skip[i] && !finished[i] && !sm.up[i] {
				gave = append(gave, s.NodeID)
			}
		}
		m.hung.mark(gave, time.Now().Add(c.cfg.ServerTimeout))
		m.earlyMaps.Add(1)
		m.hungSkips.Add(int64(len(gave)))
		c.log.Info("mutable read did not wait for servers that hang", "slot", si.String(), "waiting", gave,
			"answered", sm.answered, "servers", S, "after", time.Since(start).Round(time.Millisecond))
	} else {
		// Slots past this client's N are read only when a version found
		// says its N reaches them, so a server listing every number cannot
		// make a read fetch 256 slots. (A map that stopped early has none:
		// mayStop waits for every server when one lists such slots.)
		n := sm.maxN()
		later := sm.later
		sm.later = nil
		var wg sync.WaitGroup
		for _, e := range later {
			if e.num >= n {
				sm.later = append(sm.later, e)
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				problem := c.readSlot(ctx, sm, e)
				sm.mu.Lock()
				sm.addLocked(e, problem)
				sm.mu.Unlock()
			}()
		}
		wg.Wait()
		sm.seal()
	}
	slices.SortFunc(sm.entries, func(a, b *slotEntry) int {
		if a.num != b.num {
			return a.num - b.num
		}
		return a.pos - b.pos
	})
	return sm, nil
}

// mutableGrace is how long a map waits, from its start, for servers still
// out once the others prove it current enough: four times the time the
// slowest answer so far took (last), at least min(1 s, ServerTimeout/4).
// A healthy server answers within a few times its peers' time, so it is
// waited for and its copies are read and written; a hung one costs one
// grace, and then nothing while it is remembered as hung.
func (c *Client) mutableGrace(last time.Duration) time.Duration {
	return max(min(MutableGraceMin, c.cfg.ServerTimeout/4), MutableGraceFactor*last)
}

// graceTimer fires when the requests of a round still out have had their
// grace: mutableGrace of the latest answer's time, counted from start.
type graceTimer struct {
	c     *Client
	start time.Time
	t     *time.Timer
}

// answered notes an answer now and returns the channel that fires when
// the grace of the requests still out is over.
func (g *graceTimer) answered() <-chan time.Time {
	g.stop()
	elapsed := time.Since(g.start)
	g.t = time.NewTimer(g.c.mutableGrace(elapsed) - elapsed)
	return g.t.C
}

func (g *graceTimer) stop() {
	if g.t != nil {
		g.t.Stop()
	}
}

// quorum is how many servers must have answered in full before a map may
// leave out the others (docs/formats.md, "Reading while a server hangs").
// A publish succeeds only when shares of its version are on at least
// min(max(K, H), N, S) distinct servers; W = min(K, N, S) is the least of
// that over every writer's H (a client's H is never below K), so other
// clients' settings cannot break it. A server's slot never goes back to an
// older version; so among any S-W+1 servers at least one holds each
// acknowledged version or a newer one. A writer (a Modify's read) needs
// more: two writers whose maps both have ceil((2S-W+1)/2) servers share at
// least one server holding the current version, whose copy both then
// write with test-and-set, so that at most one of them succeeds.
func quorum(write bool, S, K, N int) int {
	w := min(K, N, S)
	q := S - w + 1
	if write {
		q = max(q, (2*S-w+2)/2)
	}
	return q
}

// mayStop reports whether the map, as it is now, may be used without the
// servers that have not answered yet: no slot past this client's N is
// listed; the servers that answered in full (each listed slot read and
// verified; a server with a failed read or a bad share does not count)
// are a quorum for the K and N of the newest version found (this
// client's when none); that newest version is readable (K good shares),
// the only one of its sequence number and not older than seen, or nothing
// at all was found and nothing seen. Call with sm not sealed.
func (sm *slotMap) mayStop(write bool, K, N int, seen uint64) bool {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.sealed || len(sm.later) > 0 {
		return false
	}
	best := sm.best()
	switch {
	case best == nil && (len(sm.versions) > 0 || len(sm.problems) > 0):
		return false // shares that no K shares of their version make readable
	case best == nil && seen > 0, best != nil && best.header.Seq < seen:
		return false // the servers still out may hold what this client saw
	case best != nil && (best.header.Seq != sm.maxSeq || sm.torn(best)):
		return false // a newer version, or a race, may need the others' shares
	case best != nil:
		K, N = best.header.K, best.header.N
	}
	return sm.complete >= quorum(write, len(sm.ring), K, N)
}

// seal ends the map: answers that come after it are left out. It reports
// whether servers were still out.
func (sm *slotMap) seal() bool {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.sealed = true
	return sm.answered < len(sm.ring)
}

// mapServer lists the slots of the server at ring position i, reads them,
// and adds what it found to the map all at once, unless the map was
// sealed meanwhile (then the server counts as not answered: a map holds
// every slot of a server or none).
func (c *Client) mapServer(ctx context.Context, sm *slotMap, i int) {
	srv := sm.ring[i]
	var nums []uint32
	// A list is a few bytes: a server that cannot give one within the
	// server timeout is taken as not answering.
	lctx, cancel := c.reqCtx(ctx)
	err := c.slotCall(lctx, srv, func(cl *storageclient.Client) (err error) {
		nums, err = cl.ListSlots(lctx, sm.si)
		return err
	})
	cancel()
	c.stats.slotLists.Add(1)
	if errors.Is(err, errors.ErrUnsupported) {
		err, nums = nil, nil
		for s := 0; s < c.cfg.N; s++ {
			nums = append(nums, uint32(s))
		}
	}
	if err != nil {
		sm.mu.Lock()
		if !sm.sealed && sm.firstErr == nil {
			sm.firstErr = err
		}
		sm.mu.Unlock()
		return
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		read     []*slotEntry
		problems []string
		later    []*slotEntry
	)
	for _, n := range nums {
		if n >= maxSlotNum {
			continue
		}
		e := &slotEntry{srv: srv, pos: i, num: int(n)}
		if int(n) >= c.cfg.N {
			later = append(later, e)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := c.readSlot(ctx, sm, e)
			mu.Lock()
			defer mu.Unlock()
			if p != "" {
				problems = append(problems, p)
			}
			if e.err != nil || e.share != nil || p != "" {
				read = append(read, e)
			}
		}()
	}
	wg.Wait()
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.sealed {
		return
	}
	sm.up[i] = true
	sm.answered++
	full := len(problems) == 0
	for _, e := range read {
		full = full && e.err == nil
		sm.addLocked(e, "")
	}
	sm.problems = append(sm.problems, problems...)
	sm.later = append(sm.later, later...)
	if full && len(later) == 0 {
		sm.complete++
		c.mut().hung.clear(srv.NodeID)
	}
}

// readSlot reads one listed slot into e: its token and, if it verifies,
// its share; a read that fails sets e.err. It returns a description of a
// bad share ("" if none). A slot gone since it was listed (or not there,
// when probing a server that cannot list) leaves e without token, share
// or error.
func (c *Client) readSlot(ctx context.Context, sm *slotMap, e *slotEntry) (problem string) {
	m := c.mut()
	ref := storage.Ref{Index: sm.si, Num: uint32(e.num)}
	var val []byte
	err := c.slotCall(ctx, e.srv, func(cl *storageclient.Client) (err error) {
		val, e.token, err = cl.ReadSlot(ctx, ref)
		return err
	})
	c.stats.slotReads.Add(1)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		e.token = ""
		return ""
	case err != nil:
		e.err, e.token = err, ""
		return ""
	}
	c.stats.bytesDown.Add(int64(len(val)))
	s, verr := mutable.VerifyShare(sm.pkh, val)
	if verr == nil && s.Num != e.num {
		verr = fmt.Errorf("share %d stored in slot %d", s.Num, e.num)
	}
	if verr != nil {
		m.corruptSeen.Add(1)
		c.stats.corrupt.Add(1)
		c.log.Warn("bad mutable share", "slot", sm.si.String(), "share", e.num, "server", e.srv.NodeID, "error", verr)
		c.advise(e.srv, ref, verr.Error())
		return fmt.Sprintf("share %d on server %s: %v", e.num, e.srv.NodeID, verr)
	}
	e.share = s
	return ""
}

// addLocked adds a slot read by readSlot to the map (sm.mu held), with
// the problem it had, if any.
func (sm *slotMap) addLocked(e *slotEntry, problem string) {
	if e.err == nil && e.share == nil && problem == "" && e.token == "" {
		return // gone since it was listed
	}
	sm.entries = append(sm.entries, e)
	if e.err != nil && sm.firstErr == nil {
		sm.firstErr = e.err
	}
	if problem != "" {
		sm.problems = append(sm.problems, problem)
	}
	if e.share == nil {
		return
	}
	h := e.share.Header
	sm.maxSeq = max(sm.maxSeq, h.Seq)
	id := h.ID()
	v := sm.versions[id]
	if v == nil {
		v = &versionSet{header: h, id: id, shares: map[int]*mutable.Share{}}
		sm.versions[id] = v
	}
	if v.shares[e.num] == nil {
		v.shares[e.num] = e.share
	}
	v.entries = append(v.entries, e)
}

// targets returns where shares 0..n-1 of a new version go: every copy
// found on a server that answered (with the token read), and, for a share
// number found nowhere (or only where the read failed), its placement
// target (place); in share-number order, each number's copies in ring
// order (publish writes the lowest number's first, as its lead).
func (sm *slotMap) targets(n int) []*slotEntry {
	var out []*slotEntry
	has := map[int]bool{}
	sm.held = map[int]int{}
	for _, e := range sm.later {
		sm.held[e.pos]++
	}
	for _, e := range sm.entries {
		sm.held[e.pos]++
		if e.num < n && e.err == nil {
			out = append(out, e)
			has[e.num] = true
		}
	}
	for s := 0; s < n; s++ {
		if !has[s] {
			if e := sm.place(s); e != nil {
				out = append(out, e)
			}
		}
	}
	// By share number, copies before a placement, then in ring order.
	slices.SortStableFunc(out, func(a, b *slotEntry) int {
		if a.num != b.num {
			return a.num - b.num
		}
		return 0
	})
	return out
}

// place picks the server for share number s, found nowhere: the first
// server from ring position s mod S on that answered and holds no slot of
// this index yet; failing that, the answered server holding fewest,
// nearest that position. nil when no server answered. Call targets first.
//
// Servers announced too full for a share (leaveFull) are left out while
// another answered.
func (sm *slotMap) place(s int) *slotEntry {
	S := len(sm.ring)
	pick := -1
	for _, withFull := range []bool{false, true} {
		for j := 0; j < S; j++ {
			i := (s + j) % S
			if sm.up[i] && (withFull || !sm.full[i]) && (pick < 0 || sm.held[i] < sm.held[pick]) {
				pick = i
				if sm.held[i] == 0 {
					break
				}
			}
		}
		if pick >= 0 || len(sm.full) == 0 {
			break
		}
	}
	if pick < 0 {
		return nil
	}
	sm.held[pick]++
	return &slotEntry{srv: sm.ring[pick], pos: pick, num: s}
}

// leaveFull marks the servers that answered and announced too little
// free space for a share of need bytes, by the rule of uploads and of the
// immutable repair (roomless, placement.Roomless): place leaves them out
// of the targets of share numbers found nowhere, unless fewer than h
// others answered (an announcement may be stale; then they are used). A
// copy a full server already holds is still written in place: the slot
// exists. It returns the node ids of the servers left out, sorted.
func (sm *slotMap) leaveFull(need int64, h int) []string {
	var pos []int
	var up []Server
	for i, s := range sm.ring {
		if sm.up[i] {
			pos = append(pos, i)
			up = append(up, s)
		}
	}
	sm.full = nil
	var ids []string
	for j := range roomless(up, need, h) {
		if sm.full == nil {
			sm.full = map[int]bool{}
		}
		sm.full[pos[j]] = true
		ids = append(ids, up[j].NodeID)
	}
	slices.Sort(ids)
	return ids
}

// writeSlot writes value to e's slot with test-and-set on e.token.
func (c *Client) writeSlot(ctx context.Context, si cap.StorageIndex, e *slotEntry, value []byte) (string, error) {
	ref := storage.Ref{Index: si, Num: uint32(e.num)}
	var tok string
	err := c.slotCall(ctx, e.srv, func(cl *storageclient.Client) (err error) {
		tok, err = cl.WriteSlot(ctx, ref, e.token, value, c.leaseSecret(si[:], e.srv.NodeID))
		return err
	})
	c.stats.slotWrites.Add(1)
	if err == nil {
		c.stats.bytesUp.Add(int64(len(value)))
	}
	return tok, err
}

// slotCall runs fn on the pooled connection to s, as do does, except that
// the answers a slot operation expects (not found, a lost test-and-set, a
// refusal by the server's write check, a call the server predates) are not
// faults of the link: they neither drop the connection nor cause a second
// try.
func (c *Client) slotCall(ctx context.Context, s Server, fn func(*storageclient.Client) error) error {
	answer := func(err error) bool {
		return err == nil || ctx.Err() != nil || errors.Is(err, storage.ErrNotFound) ||
			errors.Is(err, storage.ErrConflict) || errors.Is(err, nodelink.ErrNotMember) ||
			errors.Is(err, errors.ErrUnsupported)
	}
	cl, fresh, err := c.conn(ctx, s)
	if err != nil {
		return err
	}
	if err = fn(cl); answer(err) {
		if ctx.Err() == nil {
			c.answered(s)
		}
		return err
	}
	c.fault(s, cl, err)
	if k := errorKind(err); fresh || (k != KindUnreachable && k != KindBusy) {
		return err
	}
	if cl, _, err = c.conn(ctx, s); err != nil {
		return err
	}
	if err = fn(cl); !answer(err) {
		c.fault(s, cl, err)
	} else if ctx.Err() == nil {
		c.answered(s)
	}
	return err
}

// advise tells a server, in the background, that a slot it holds failed a
// check.
func (c *Client) advise(srv Server, ref storage.Ref, reason string) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ServerTimeout)
		defer cancel()
		c.slotCall(ctx, srv, func(cl *storageclient.Client) error {
			return cl.AdviseCorruption(ctx, ref, true, reason)
		})
	}()
}

// publish writes version v where sm says its shares go (targets): every
// copy of each share number with test-and-set on the token read, and
// share numbers found nowhere to their placement targets with "must not
// exist". The lead goes first, so that of two writers that read the same
// version one loses before writing anything, then the others in parallel.
// A placement target that fails is given up for the next server on the
// ring; a write that hangs while the others of its round are done is given
// up after a grace (writeRound). It fails with errConflict if any write lost a race, and with
// ErrNotHappy if fewer than min(max(K, H), N, S) distinct servers took a
// share (S: the servers known).
func (c *Client) publish(ctx context.Context, sm *slotMap, v *mutable.Version) error {
	m := c.mut()
	h := v.Header
	// Share numbers found nowhere go to servers with room for one, as in
	// a repair (a new slot's map has the full servers down already).
	if !sm.fresh && len(v.Shares) > 0 {
		sm.leaveFull(int64(len(v.Shares[0])), min(max(h.K, c.cfg.H), h.N, len(sm.ring)))
	}
	todo := sm.targets(h.N)
	var (
		mu                 sync.Mutex
		conflicted, failed int
		firstErr           error
		retry              []*slotEntry
	)
	servers := map[string]bool{} // that took a share
	abandoned, recorded := map[*slotEntry]bool{}, map[*slotEntry]bool{}
	// giveUp counts a write writeRound stopped waiting for as failed,
	// and has a placement target placed again.
	giveUp := func(e *slotEntry) {
		mu.Lock()
		defer mu.Unlock()
		if recorded[e] {
			return // it ended just now
		}
		abandoned[e] = true
		failed++
		if firstErr == nil {
			firstErr = fmt.Errorf("share %d: server %s did not answer a slot write while others did", e.num, e.srv.NodeID)
		}
		if e.token == "" && e.share == nil && ctx.Err() == nil {
			retry = append(retry, e)
		}
	}
	for _, e := range sm.entries {
		if e.err != nil && e.num < h.N {
			failed++
			if firstErr == nil {
				firstErr = e.err
			}
		}
	}
	write := func(wctx context.Context, e *slotEntry) {
		placed := e.token == "" && e.share == nil
		if sm.bounded {
			var cancel context.CancelFunc
			wctx, cancel = c.reqCtx(wctx)
			defer cancel()
		}
		tok, err := c.writeSlot(wctx, sm.si, e, v.Shares[e.num])
		mu.Lock()
		defer mu.Unlock()
		if abandoned[e] {
			return // given up by writeRound, and counted as failed
		}
		recorded[e] = true
		switch {
		case err == nil:
			e.token = tok
			servers[e.srv.NodeID] = true
			sm.wrote = append(sm.wrote, e)
		case errors.Is(err, storage.ErrConflict):
			m.conflicts.Add(1)
			conflicted++
		default:
			if errors.Is(err, nodelink.ErrNotMember) {
				m.refused.Add(1)
			}
			c.log.Warn("mutable share write failed", "slot", sm.si.String(), "share", e.num, "server", e.srv.NodeID, "error", err)
			failed++
			if firstErr == nil {
				firstErr = err
			}
			if placed && !errors.Is(err, nodelink.ErrNotMember) && ctx.Err() == nil {
				retry = append(retry, e)
			}
		}
	}
	// The lead: every copy of the lowest share number, one after another
	// in ring order (the next share number's if none of them took it).
	// Clients that know different servers see different copies, but a
	// client that knows more servers sees every copy one that knows fewer
	// does, and both write them in the same order: the first copy both
	// know goes to one of them, and the other stops there, having written
	// at most copies of this one share number, which no reader can take
	// for a version.
	for !sm.fresh && len(todo) > 0 && len(servers) == 0 {
		lead := todo[0].num
		for len(todo) > 0 && todo[0].num == lead {
			e := todo[0]
			todo = todo[1:]
			write(ctx, e)
			if conflicted > 0 {
				return fmt.Errorf("version %d share %d: %w", h.Seq, e.num, errConflict)
			}
		}
	}
	for round := 0; len(todo) > 0 || len(retry) > 0; round++ {
		c.writeRound(ctx, sm, todo, min(max(h.K, c.cfg.H), h.N, len(sm.ring)), write, giveUp)
		if conflicted > 0 || round >= len(sm.ring) {
			break
		}
		// A placement target that failed: take its server out of the map
		// and place the share again.
		todo = nil
		for _, e := range retry {
			sm.up[e.pos] = false
		}
		for _, e := range retry {
			if t := sm.place(e.num); t != nil {
				todo = append(todo, t)
			}
		}
		retry = nil
	}
	sm.failed = failed
	if conflicted > 0 {
		return fmt.Errorf("version %d: %d share writes lost a race: %w", h.Seq, conflicted, errConflict)
	}
	// A grid of fewer servers than that can do no better than all of them.
	need := min(max(h.K, c.cfg.H), h.N, len(sm.ring))
	if len(servers) < need {
		return fmt.Errorf("version %d: shares written to %d servers, %d writes failed, %d servers needed: %w (first failure: %v)",
			h.Seq, len(servers), failed, need, ErrNotHappy, firstErr)
	}
	m.published.Add(1)
	return nil
}

// writeRound runs write on every target of todo in parallel (Parallel at
// a time) and returns when all are done, except writes that hang: once
// the others are done and the late ones had mutableGrace since the round
// began, they are cancelled and counted as failed (giveUp: a placement
// target is placed again on the next server), and their servers are
// remembered as hung, as readMap does. A write given up is one whose
// outcome is unknown, as one that timed out; giving up sooner changes
// nothing that decides between writers: a round runs after the lead (the
// first copy two writers that read the same version both write) was
// written, or for a new slot, whose key no one else can know before
// CreateMutable returns. If it lands later it is a copy of this version
// (its test-and-set token is the one read), which the next publish
// updates like any lagging copy.
//
// Late writes are given up only while the servers not late are need
// (the publish's happiness) or more: when too few are left to take the
// shares, the round waits for the late ones (each write is bounded by
// the server timeout), since a server that is merely slow (a loaded
// machine) would otherwise fail the publish with ErrNotHappy though it
// was about to answer.
func (c *Client) writeRound(ctx context.Context, sm *slotMap, todo []*slotEntry, need int, write func(context.Context, *slotEntry), giveUp func(*slotEntry)) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	done := make(chan int, len(todo))
	sem := make(chan struct{}, c.cfg.Parallel)
	for i, e := range todo {
		go func() {
			select {
			case sem <- struct{}{}:
				write(rctx, e)
				<-sem
			case <-rctx.Done():
				write(rctx, e) // fails at once: counted, and placed again
			}
			done <- i
		}()
	}
	finished := make([]bool, len(todo))
	grace := graceTimer{c: c, start: start}
	defer grace.stop()
	var timerC <-chan time.Time
	for pending := len(todo); pending > 0; {
		select {
		case i := <-done:
			pending--
			finished[i] = true
			if pending > 0 {
				timerC = grace.answered()
			}
			continue
		case <-timerC:
		}
		// The late writes are cancelled and left to end on their own
		// (one may wait for a dial to its server): their results are
		// ignored from now on.
		lateSrv := map[string]bool{}
		for i, e := range todo {
			if !finished[i] {
				lateSrv[e.srv.NodeID] = true
			}
		}
		if len(sm.ring)-len(lateSrv) < need {
			timerC = nil // too few servers without them: wait for their answers
			continue
		}
		var late []string
		for i, e := range todo {
			if !finished[i] {
				late = append(late, e.srv.NodeID)
				giveUp(e)
			}
		}
		c.markHung(late)
		c.log.Info("mutable write did not wait for servers that hang", "slot", sm.si.String(), "waiting", late)
		return
	}
}

// backoff is the pause before attempt+1: exponential from 5 ms to 500 ms,
// jittered so that racing writers fall apart.
func backoff(attempt int) time.Duration {
	d := 5 * time.Millisecond << min(attempt, 7)
	d = min(d, 500*time.Millisecond)
	return d/2 + rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
