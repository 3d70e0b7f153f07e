package storageserver

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tarnfs/tarn/sdk/storage"
)

// Lease is one owner's claim on a storage index: the SHA-256 of the secret
// the owner renews with, and when the claim runs out. A storage index with
// no unexpired lease may be garbage-collected by the lease crawler (crawler.go).
type Lease struct {
	OwnerHash [sha256.Size]byte
	Expires   time.Time
}

// leaseStore keeps leases per storage index. The bbolt store keeps them in
// one file beside the server's state, bucket "leases", key = storage index
// (16 bytes) || owner hash (32 bytes), value = expiry as big-endian Unix
// seconds (8 bytes). Without a path they live in memory.
type leaseStore interface {
	put(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, expires time.Time) error
	// begin queues a record and returns a wait that commits it (with
	// every record queued by then) unless a commit already took it, and
	// returns its outcome. Work done between begin and wait (PutShares
	// stores its shares) lets the records of concurrent puts gather into
	// one commit. wait must be called exactly once.
	begin(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, expires time.Time) (wait func() error)
	list(index [storage.StorageIndexSize]byte) ([]Lease, error)
	remove(index [storage.StorageIndexSize]byte) error // every lease of index
	// floor is the time before which the crawler removes nothing (zero:
	// none): after a crash, when leases acknowledged may have been lost.
	floor() time.Time
	close() error
}

var leaseBucket = []byte("leases")

var (
	_ leaseStore = (*boltLeases)(nil)
	_ leaseStore = (*memLeases)(nil)
)

// boltLeases commits puts in groups: a record is queued first (begin)
// and committed when its put waits for it (wait): the waiter that finds
// no commit running commits every record queued by then, including those
// of puts whose waits come later (they then find theirs done); a waiter
// that finds a commit running waits for it and, if its record was not in
// it, commits next. PutShares queues its lease before it stores its
// shares and waits after, so the leases of the puts stored together (the
// disk backend's group commit) share one bbolt commit. A lone put commits
// when it waits: no timer, no added latency. Commits are not fsynced (bbolt NoSync): a put returns
// once its record is in a committed transaction in the page cache, which
// survives a crash of the process but not of the machine. The state file
// (leasestate.go) makes that safe: before a put is acknowledged the state
// durably says the db is open and bounds the expiry of every lease this
// run acknowledges (the ceiling), and after a crash the crawler removes
// nothing before that bound. Close makes the db durable and marks it
// closed.
type boltLeases struct {
	db        *bolt.DB
	lock      *os.File // flocked while open (lockLeases)
	statePath string
	step      time.Duration // how far past a new expiry the ceiling is raised

	mu      sync.Mutex
	idle    *sync.Cond // broadcast when running goes false
	queue   []*leasePut
	running bool
	closed  bool
	state   leaseState   // as last written; the committer and close only
	floorAt time.Time    // set at open, never changed
	puts    atomic.Int64 // records put
	commits atomic.Int64 // commits that carried them
	raises  atomic.Int64 // commits that raised the ceiling first
}

// leasePut is one queued record and its outcome (under boltLeases.mu).
type leasePut struct {
	key  []byte
	val  [8]byte
	done bool // a commit took it; err is its outcome
	err  error
}

// leaseKeySize is the size of a lease record's key.
const leaseKeySize = storage.StorageIndexSize + sha256.Size

// errLeasesClosed answers puts after close.
var errLeasesClosed = errors.New("lease db closed")

// openLeases opens the lease store at path ("" keeps leases in memory).
// leaseDuration bounds how long a lease can last; now is the clock. A
// db the last run did not close is rebuilt and a floor set (leasestate.go);
// info says so.
func openLeases(path string, leaseDuration time.Duration, now func() time.Time) (leaseStore, leaseOpen, error) {
	var info leaseOpen
	if path == "" {
		return &memLeases{m: map[[storage.StorageIndexSize]byte]map[[sha256.Size]byte]time.Time{}}, info, nil
	}
	lock, err := lockLeases(path)
	if err != nil {
		return nil, info, fmt.Errorf("open lease db %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	statePath := path + ".state"
	var st leaseState
	b, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new db, or one an older version fsynced at every commit.
	case err == nil:
		st, err = parseLeaseState(b)
		if err == nil && st.open {
			info.unclean = true
			st.floor = max(st.floor, st.ceiling)
		}
	}
	noCeiling := err != nil && !errors.Is(err, fs.ErrNotExist)
	if noCeiling {
		// The ceiling is unknown: an acknowledged lease lasts at most
		// leaseDuration from when it was given, before now, or is one
		// of the records read below.
		info.unclean = true
		info.readErr = err
		st = leaseState{floor: now().Add(leaseDuration).Unix() + 1}
	}
	if info.unclean {
		if _, serr := os.Stat(path); serr == nil {
			kept, latest, rerr, err := rebuildLeases(path)
			if err != nil {
				return nil, info, fmt.Errorf("open lease db %s: %w", path, err)
			}
			if noCeiling {
				st.floor = max(st.floor, latest+1)
			}
			info.readErr = errors.Join(info.readErr, rerr)
			info.kept = kept
		}
	}
	if st.floor > now().Unix() {
		info.floor = time.Unix(st.floor, 0)
	} else {
		st.floor = 0
	}
	step := max(leaseDuration/leaseRefreshDiv, time.Second)
	st.open = true
	// The ceiling must bound every record in the db, not only those this
	// run writes: a power loss can damage pages holding records of earlier
	// runs too. Those are bounded by the last ceiling (and the floor), which
	// now + leaseDuration does not cover if LeaseDuration was shortened.
	st.ceiling = max(now().Add(leaseDuration+step).Unix(), st.ceiling, st.floor)
	if err := writeLeaseState(statePath, st); err != nil {
		return nil, info, fmt.Errorf("open lease db %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: true})
	if err != nil {
		return nil, info, fmt.Errorf("open lease db %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(leaseBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, info, fmt.Errorf("init lease db %s: %w", path, err)
	}
	bl := &boltLeases{db: db, lock: lock, statePath: statePath, step: step, state: st, floorAt: info.floor}
	bl.idle = sync.NewCond(&bl.mu)
	ok = true
	return bl, info, nil
}

func (b *boltLeases) floor() time.Time { return b.floorAt }

func (b *boltLeases) put(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, expires time.Time) error {
	return b.begin(index, owner, expires)()
}

func (b *boltLeases) begin(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, expires time.Time) func() error {
	p := &leasePut{key: append(index[:], owner[:]...)}
	binary.BigEndian.PutUint64(p.val[:], uint64(expires.Unix()))
	b.puts.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return func() error { return errLeasesClosed }
	}
	b.queue = append(b.queue, p)
	return func() error { return b.wait(p) }
}

// wait returns p's outcome once a commit took it, committing the queue
// itself when no commit is running.
func (b *boltLeases) wait(p *leasePut) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !p.done {
		if b.running {
			b.idle.Wait()
			continue
		}
		b.commitQueued()
	}
	return p.err
}

// commitQueued commits every queued record; b.mu is held and not
// running, and is released during the commit.
func (b *boltLeases) commitQueued() {
	batch := b.queue
	b.queue = nil
	b.running = true
	b.mu.Unlock()
	errs := b.commit(batch)
	b.mu.Lock()
	for i, p := range batch {
		p.done, p.err = true, errs[i]
	}
	b.running = false
	b.idle.Broadcast()
}

// commit writes a group of records in one transaction and tells each its
// outcome. Should the group fail, each record is tried alone, so that one
// bad record cannot fail the others. A record expiring past the ceiling
// first raises it durably: nothing is acknowledged beyond the ceiling the
// state file shows.
func (b *boltLeases) commit(batch []*leasePut) []error {
	errs := make([]error, len(batch))
	var latest int64
	for _, p := range batch {
		latest = max(latest, int64(binary.BigEndian.Uint64(p.val[:])))
	}
	if latest > b.state.ceiling {
		next := b.state
		next.ceiling = latest + int64(b.step/time.Second)
		if err := writeLeaseState(b.statePath, next); err != nil {
			for i := range errs {
				errs[i] = fmt.Errorf("raise the lease ceiling: %w", err)
			}
			return errs
		}
		b.state = next
		b.raises.Add(1)
	}
	b.commits.Add(1)
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(leaseBucket)
		for _, p := range batch {
			if err := bk.Put(p.key, p.val[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		for i, p := range batch {
			errs[i] = b.commit([]*leasePut{p})[0]
		}
		return errs
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}

func (b *boltLeases) list(index [storage.StorageIndexSize]byte) ([]Lease, error) {
	var out []Lease
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(leaseBucket).Cursor()
		for k, v := c.Seek(index[:]); k != nil && len(k) == storage.StorageIndexSize+sha256.Size && string(k[:storage.StorageIndexSize]) == string(index[:]); k, v = c.Next() {
			if len(v) != 8 {
				return errors.New("lease record of wrong size")
			}
			var l Lease
			copy(l.OwnerHash[:], k[storage.StorageIndexSize:])
			l.Expires = time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

func (b *boltLeases) remove(index [storage.StorageIndexSize]byte) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(leaseBucket).Cursor()
		for k, _ := c.Seek(index[:]); k != nil && len(k) >= storage.StorageIndexSize && string(k[:storage.StorageIndexSize]) == string(index[:]); k, _ = c.Seek(index[:]) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// close stops taking puts, waits for the commit running, makes the db
// durable and only then marks it closed. If the sync fails the state stays
// open, so the next start treats this run as a crash.
func (b *boltLeases) close() error {
	b.mu.Lock()
	b.closed = true
	for b.running {
		b.idle.Wait()
	}
	if len(b.queue) > 0 { // begun, not waited for yet: their waits find them done
		b.commitQueued()
	}
	b.mu.Unlock()
	err := b.db.Sync()
	if err == nil {
		next := b.state
		next.open = false
		err = writeLeaseState(b.statePath, next)
	}
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	b.lock.Close()
	if err != nil {
		return fmt.Errorf("close lease db: %w", err)
	}
	return nil
}

type memLeases struct {
	mu sync.Mutex
	m  map[[storage.StorageIndexSize]byte]map[[sha256.Size]byte]time.Time
}

func (m *memLeases) put(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m[index] == nil {
		m.m[index] = map[[sha256.Size]byte]time.Time{}
	}
	m.m[index][owner] = expires
	return nil
}

func (m *memLeases) begin(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, expires time.Time) func() error {
	err := m.put(index, owner, expires)
	return func() error { return err }
}

func (m *memLeases) list(index [storage.StorageIndexSize]byte) ([]Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Lease
	for o, e := range m.m[index] {
		out = append(out, Lease{OwnerHash: o, Expires: e})
	}
	return out, nil
}

func (m *memLeases) remove(index [storage.StorageIndexSize]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, index)
	return nil
}

func (m *memLeases) floor() time.Time { return time.Time{} }

func (m *memLeases) close() error { return nil }

// leaseRefreshDiv: an implied lease (addLease) is rewritten only when the
// one this server last wrote for the same owner would expire more than
// LeaseDuration/leaseRefreshDiv (a day of the default 31) sooner than a
// new one. Leases are about garbage collection weeks away; a day's
// difference in expiry does not matter, a commit per write does.
const leaseRefreshDiv = 31

// leaseCacheMax bounds leaseCache; when full it starts over.
const leaseCacheMax = 1 << 16

// leaseCache remembers the expiry of leases this process wrote (only after
// the write was durable), so addLease can skip writes that change
// next to nothing.
type leaseCache struct {
	mu sync.Mutex
	m  map[[storage.StorageIndexSize + sha256.Size]byte]time.Time
}

func leaseKey(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte) (k [storage.StorageIndexSize + sha256.Size]byte) {
	copy(k[:], index[:])
	copy(k[storage.StorageIndexSize:], owner[:])
	return k
}

// has reports whether a lease of owner on index is known to expire at or
// after notBefore.
func (c *leaseCache) has(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, notBefore time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[leaseKey(index, owner)]
	return ok && !exp.Before(notBefore)
}

func (c *leaseCache) add(index [storage.StorageIndexSize]byte, owner [sha256.Size]byte, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= leaseCacheMax {
		c.m = map[[storage.StorageIndexSize + sha256.Size]byte]time.Time{}
	}
	c.m[leaseKey(index, owner)] = exp
}

// forget drops every lease of index (the crawler removed them).
func (c *leaseCache) forget(index [storage.StorageIndexSize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if [storage.StorageIndexSize]byte(k[:storage.StorageIndexSize]) == index {
			delete(c.m, k)
		}
	}
}
