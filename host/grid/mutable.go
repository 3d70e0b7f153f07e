package grid

// Mutable files over the grid: create, read, modify, verify and repair
// slots in the format of host/mutable. docs/formats.md ("Mutable files") has the format
// and the write protocol; in short:
//
//   - Share s of a slot lives in slot s of the server at position s mod S of
//     the storage index's permuted ring of S servers (its home).
//   - A read asks every home, keeps the shares that verify, and takes the
//     highest version that has K shares; it sweeps every server for every
//     share number when that is not enough or older than a version seen.
//   - A modify reads (always sweeping), applies the caller's function to
//     the content, and writes version max+1 to every home with test-and-set
//     on the token it read, the lowest share first (the lead) and the others
//     after it, and to every slot off the homes that held an older share
//     (another client's ring may put homes there). Any
//     conflict means another writer got in: it re-reads and applies the
//     function again, after a random back-off, so no update is lost.

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
	// MutableLagWait is how long a Modify waits while some homes hold an
	// older version than the current one (the rest of a publish in flight,
	// or a server that missed versions: the next publish repairs it).
	MutableLagWait = 250 * time.Millisecond
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
}

// mutState is a Client's mutable-file state, kept beside the Client (it is
// collected with it) so that grid.go stays as it is.
type mutState struct {
	mu   sync.Mutex
	seen mutable.SeenStore

	creates, modifies, reads, published      atomic.Int64
	conflicts, retries, refused, corruptSeen atomic.Int64
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
	// A fresh key owns an empty index: every home is written with "must
	// not exist", so nothing is read first.
	sm := &slotMap{si: si, ring: ring(si[:], c.servers()), home: map[int]*slotEntry{}}
	if len(sm.ring) == 0 {
		return w, fmt.Errorf("create mutable file %s: no storage servers known", si)
	}
	for s := 0; s < v.Header.N; s++ {
		sm.home[s] = &slotEntry{srv: sm.ring[s%len(sm.ring)], num: s}
	}
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
	_, best, err := c.settled(ctx, si, rc.PublicKeyHash, false)
	if err != nil {
		return nil, 0, err
	}
	data, err := c.decodeVersion(ctx, rc, best)
	if err != nil {
		return nil, 0, err
	}
	c.record(si, best.header.Seq)
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
		if bytes.Equal(next, orig) && sm.maxSeq == best.header.Seq {
			c.record(si, best.header.Seq)
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
	// Healthy: every share's home holds the current version, no newer
	// partial version exists, and no share failed a check.
	Healthy bool
}

// VerifyMutable checks a mutable file with any of its caps (a verify cap
// is enough): it asks every server for every share number, checks every
// share's signature and proof, and rebuilds the current version's
// ciphertext from K shares to check the signed hash. It changes nothing.
func (c *Client) VerifyMutable(ctx context.Context, cp cap.Cap) (*MutableCheck, error) {
	pkh, err := pkhOf(cp)
	if err != nil {
		return nil, fmt.Errorf("verify mutable file: %w", err)
	}
	sm, err := c.readMap(ctx, cap.MutableStorageIndexOf(pkh), pkh, true)
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
	// Written lists the share numbers written to their homes.
	Written []int
	// Failed describes homes that could not take their share (unreachable,
	// or holding a newer version).
	Failed []string
}

// RepairMutable checks a mutable file like VerifyMutable and writes the
// current version's share to every home that lacks it (missing, older,
// corrupt). It needs no write cap: the shares are rebuilt byte-identical
// from K good ones, signature included. A file with no readable version
// cannot be repaired (ErrMutableNotEnoughShares).
func (c *Client) RepairMutable(ctx context.Context, cp cap.Cap) (*MutableRepair, error) {
	pkh, err := pkhOf(cp)
	if err != nil {
		return nil, fmt.Errorf("repair mutable file: %w", err)
	}
	si := cap.MutableStorageIndexOf(pkh)
	sm, err := c.readMap(ctx, si, pkh, true)
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
	var mu sync.Mutex
	var wg sync.WaitGroup
	for s := 0; s < best.header.N; s++ {
		e := sm.home[s]
		switch {
		case e == nil:
			continue
		case e.err != nil:
			out.Failed = append(out.Failed, fmt.Sprintf("share %d: server %s: %v", s, e.srv.NodeID, e.err))
			continue
		case e.share != nil && e.share.Header.ID() == best.id:
			continue
		case e.share != nil && e.share.Header.Seq > best.header.Seq:
			out.Failed = append(out.Failed, fmt.Sprintf("share %d: server %s holds newer version %d", s, e.srv.NodeID, e.share.Header.Seq))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := storage.Ref{Index: si, Num: uint32(e.num)}
			err := c.slotCall(ctx, e.srv, func(cl *storageclient.Client) error {
				_, err := cl.WriteSlot(ctx, ref, e.token, shares[e.num], c.leaseSecret(si[:], e.srv.NodeID))
				return err
			})
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
	slices.Sort(out.Written)
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

// slotEntry is one slot read from one server.
type slotEntry struct {
	srv   Server
	num   int
	token string // the value's token; "" when the slot does not exist
	share *mutable.Share
	err   error // the read failed: the token is unknown
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

// slotMap is what a read found of a slot on the grid.
type slotMap struct {
	si       cap.StorageIndex
	pkh      [cap.PublicKeyHashSize]byte
	ring     []Server
	home     map[int]*slotEntry
	offHome  []*slotEntry // slots off the homes that hold a good share
	versions map[[tagged.Size]byte]*versionSet
	maxSeq   uint64
	answered int   // slots that answered (found or not found)
	firstErr error // of the reads that failed
	problems []string
	mu       sync.Mutex
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
// newer version lacks K shares, and up to
// MutableLagWait while a home holds something other than the current
// version, so that it does not write on top of a publish in progress
// (which would only make one of the two lose a race). Past the wait, what
// is there is taken as it is: an unfinished newer version counts as
// abandoned, and the next publish overwrites it.
func (c *Client) settled(ctx context.Context, si cap.StorageIndex, pkh [cap.PublicKeyHashSize]byte, forWrite bool) (*slotMap, *versionSet, error) {
	// An unfinished publish is waited out for as long as it makes progress
	// (what the homes hold changes), and for staleWait after its last
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
		// A writer sweeps every server: shares of older versions off
		// its homes (homes on another client's ring) are found, and
		// publish brings them up to date too.
		sm, err := c.readMap(ctx, si, pkh, forWrite)
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
		case forWrite && sm.lagging(best):
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
				c.log.Debug("homes of a mutable file still lag, going on", "slot", si.String(), "current", best.header.Seq)
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

// fingerprint names what the homes hold, to tell a publish in progress
// (it changes) from an abandoned one (it does not).
func (sm *slotMap) fingerprint() string {
	var b strings.Builder
	for s := 0; s < len(sm.home); s++ {
		e := sm.home[s]
		switch {
		case e == nil:
		case e.share != nil:
			id := e.share.Header.ID()
			fmt.Fprintf(&b, "%d:%x ", s, id[:8])
		default:
			fmt.Fprintf(&b, "%d:%q ", s, e.token)
		}
	}
	return b.String()
}

// lagging reports whether a home that answered holds something other than
// version v (an older or racing version, nothing, or a bad share).
func (sm *slotMap) lagging(v *versionSet) bool {
	for s := 0; s < v.header.N; s++ {
		e := sm.home[s]
		if e != nil && e.err == nil && (e.share == nil || e.share.Header.ID() != v.id) {
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

// readMap reads the slot's shares from their homes (and, when that does not
// give a current version at least as new as any seen, or when all is set,
// from every server).
func (c *Client) readMap(ctx context.Context, si cap.StorageIndex, pkh [cap.PublicKeyHashSize]byte, all bool) (*slotMap, error) {
	sm := &slotMap{si: si, pkh: pkh, ring: ring(si[:], c.servers()), home: map[int]*slotEntry{},
		versions: map[[tagged.Size]byte]*versionSet{}}
	S := len(sm.ring)
	if S == 0 {
		return nil, fmt.Errorf("mutable file %s: no storage servers known", si)
	}
	// Homes of shares 0..N-1 of this client's N first; more once a
	// header tells a larger N.
	n := c.cfg.N
	c.readSlots(ctx, sm, homes(sm, 0, n), true)
	if want := sm.maxN(); want > n {
		c.readSlots(ctx, sm, homes(sm, n, want), true)
		n = want
	}
	seen, _ := c.mut().store().Seen(si)
	best := sm.best()
	if all || best == nil || best.header.Seq < max(seen, sm.maxSeq) {
		n = max(n, sm.maxN())
		var sweep []*slotEntry
		for i, srv := range sm.ring {
			for s := 0; s < n; s++ {
				if s%S != i {
					sweep = append(sweep, &slotEntry{srv: srv, num: s})
				}
			}
		}
		c.readSlots(ctx, sm, sweep, false)
	}
	return sm, nil
}

func homes(sm *slotMap, from, to int) []*slotEntry {
	var out []*slotEntry
	for s := from; s < to; s++ {
		out = append(out, &slotEntry{srv: sm.ring[s%len(sm.ring)], num: s})
	}
	return out
}

// maxN is the largest N among the versions found.
func (sm *slotMap) maxN() int {
	n := 0
	for _, v := range sm.versions {
		n = max(n, v.header.N)
	}
	return n
}

// readSlots reads the entries' slots in parallel and adds what verifies to
// the map.
func (c *Client) readSlots(ctx context.Context, sm *slotMap, entries []*slotEntry, home bool) {
	m := c.mut()
	sem := make(chan struct{}, c.cfg.Parallel)
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ref := storage.Ref{Index: sm.si, Num: uint32(e.num)}
			var val []byte
			err := c.slotCall(ctx, e.srv, func(cl *storageclient.Client) (err error) {
				val, e.token, err = cl.ReadSlot(ctx, ref)
				return err
			})
			var problem string
			switch {
			case errors.Is(err, storage.ErrNotFound):
				e.token = ""
			case err != nil:
				e.err = err
			default:
				c.stats.bytesDown.Add(int64(len(val)))
				s, verr := mutable.VerifyShare(sm.pkh, val)
				if verr == nil && s.Num != e.num {
					verr = fmt.Errorf("share %d stored in slot %d", s.Num, e.num)
				}
				if verr != nil {
					m.corruptSeen.Add(1)
					c.stats.corrupt.Add(1)
					problem = fmt.Sprintf("share %d on server %s: %v", e.num, e.srv.NodeID, verr)
					c.log.Warn("bad mutable share", "slot", sm.si.String(), "share", e.num, "server", e.srv.NodeID, "error", verr)
					c.advise(e.srv, ref, verr.Error())
				} else {
					e.share = s
				}
			}
			sm.mu.Lock()
			defer sm.mu.Unlock()
			if home {
				sm.home[e.num] = e
			} else if e.share != nil {
				sm.offHome = append(sm.offHome, e)
			}
			if e.err == nil {
				sm.answered++
			} else if sm.firstErr == nil {
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
		}()
	}
	wg.Wait()
}

// slotCall runs fn on the pooled connection to s, as do does, except that
// the answers a slot operation expects (not found, a lost test-and-set, a
// refusal by the server's write check) are not faults of the link: they
// neither drop the connection nor cause a second try.
func (c *Client) slotCall(ctx context.Context, s Server, fn func(*storageclient.Client) error) error {
	answer := func(err error) bool {
		return err == nil || ctx.Err() != nil || errors.Is(err, storage.ErrNotFound) ||
			errors.Is(err, storage.ErrConflict) || errors.Is(err, nodelink.ErrNotMember)
	}
	cl, fresh, err := c.conn(ctx, s)
	if err != nil {
		return err
	}
	if err = fn(cl); answer(err) {
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

// publish writes version v to the homes in sm with test-and-set on the
// tokens read: the lowest share first, so that of two writers that read
// the same version one loses before writing anything, then the others in
// parallel. Slots off the homes that hold a share of another version (a
// home on the ring of a client that knows other servers) get v's share
// too, so that such a client does not go on reading the old version
// there; only home writes count towards happiness. It fails with
// errConflict if any write lost a race, and with ErrNotHappy if fewer than
// min(max(K, H), N) shares were written to homes.
func (c *Client) publish(ctx context.Context, sm *slotMap, v *mutable.Version) error {
	m := c.mut()
	h := v.Header
	var todo []*slotEntry
	failed := 0
	var firstErr error
	for s := 0; s < h.N; s++ {
		e := sm.home[s]
		if e == nil || e.err != nil {
			failed++
			if e != nil && firstErr == nil {
				firstErr = e.err
			}
			continue
		}
		todo = append(todo, e)
	}
	var (
		mu                  sync.Mutex
		written, conflicted int
	)
	write := func(e *slotEntry, home bool) {
		ref := storage.Ref{Index: sm.si, Num: uint32(e.num)}
		var tok string
		err := c.slotCall(ctx, e.srv, func(cl *storageclient.Client) (err error) {
			tok, err = cl.WriteSlot(ctx, ref, e.token, v.Shares[e.num], c.leaseSecret(sm.si[:], e.srv.NodeID))
			return err
		})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			e.token = tok
			if home {
				written++
			}
			c.stats.bytesUp.Add(int64(len(v.Shares[e.num])))
		case errors.Is(err, storage.ErrConflict):
			m.conflicts.Add(1)
			conflicted++
		case !home:
			c.log.Warn("mutable share update off its home failed", "slot", sm.si.String(), "share", e.num, "server", e.srv.NodeID, "error", err)
		default:
			if errors.Is(err, nodelink.ErrNotMember) {
				m.refused.Add(1)
			}
			c.log.Warn("mutable share write failed", "slot", sm.si.String(), "share", e.num, "server", e.srv.NodeID, "error", err)
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	// The lead: the first share whose write gets an answer other than a
	// failure.
	for len(todo) > 0 && written == 0 {
		e := todo[0]
		todo = todo[1:]
		write(e, true)
		if conflicted > 0 {
			return fmt.Errorf("version %d share %d: %w", h.Seq, e.num, errConflict)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.cfg.Parallel)
	var stale []*slotEntry
	for _, e := range sm.offHome {
		if e.num < h.N && e.share.Header.ID() != v.Header.ID() {
			stale = append(stale, e)
		}
	}
	for i, e := range slices.Concat(todo, stale) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			write(e, i < len(todo))
		}()
	}
	wg.Wait()
	if conflicted > 0 {
		return fmt.Errorf("version %d: %d share writes lost a race: %w", h.Seq, conflicted, errConflict)
	}
	need := min(max(h.K, c.cfg.H), h.N)
	if written < need {
		return fmt.Errorf("version %d: %d shares written, %d failed, %d needed: %w (first failure: %v)",
			h.Seq, written, failed, need, ErrNotHappy, firstErr)
	}
	m.published.Add(1)
	return nil
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
