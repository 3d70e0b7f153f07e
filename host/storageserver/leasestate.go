package storageserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tarnfs/tarn/host/filelock"
)

// The lease db is written without an fsync per commit (bbolt NoSync); this
// file is what makes that safe. Why it is:
//
// A lease only ever protects shares from the crawler (crawler.go), so a
// lease record lost in a crash does harm only if the crawler collects its
// shares before the lost lease would have expired. The state file beside
// the db (LeasePath + ".state", replaced atomically: temp, fsync, rename,
// fsync of the folder) says three things:
//
//   - open or closed: "open" is written, durably, before the first commit
//     of a run; "closed" only after Close made the db durable (fdatasync)
//     and stopped taking puts. A start that finds "open" follows a crash
//     (of the process, the kernel or the power) and trusts nothing the db
//     says about leases written in that run;
//   - a ceiling: no lease with a later expiry is acknowledged while the
//     state says "open" with this ceiling. A commit whose records would
//     expire later first raises the ceiling durably (to the latest expiry
//     plus LeaseDuration/leaseRefreshDiv, a day at 31 days, so about one
//     state write a day). Every lease acknowledged in a run that crashed
//     therefore expires by its ceiling, whatever the clock did since. A
//     start never lowers the ceiling (it is the later of the last one and
//     now + LeaseDuration + a step): a power loss can damage pages holding
//     records of earlier runs as well, and a LeaseDuration shortened
//     between runs must not drop the bound on those;
//   - a floor: the crawler removes nothing before it. A start after a
//     crash sets the floor to at least the crashed run's ceiling, and the
//     floor is kept in every later state until it has passed, so clean
//     restarts in between do not drop it.
//
// Hence a lease acknowledged and then lost in a crash cannot let its
// shares be collected earlier than the lease would have: until the floor
// nothing is collected, and after it the lost lease had expired anyway.
// Leases acknowledged after the restart are covered by the new run's own
// state in the same way.
//
// The db itself: bbolt without fsync keeps its own consistency across a
// process crash (the page cache survives; an interrupted commit leaves the
// previous meta page in force), but not across a power loss, where a meta
// page may reach the disk before the pages it points to. So a start after
// a crash does not use the db file as it is: it copies every well-formed
// record it can read into a fresh db (fsynced, then renamed over the old
// one), reading under recover with faults turned into panics, and starts
// empty if the old file cannot be opened at all. Stale, missing or garbage
// records are then harmless: missing ones are covered by the floor (and,
// as for any index without a lease, by the crawler's grace lease),
// garbage ones only keep shares longer, and the fresh file has a freelist
// and pages of its own, so no damage spreads into later commits. A state
// file that cannot be read at all (it is only ever replaced whole, so only
// damage to the disk or by hand does that) is taken as a crash whose
// ceiling is unknown: the floor becomes the later of now + LeaseDuration
// (as long as a lease acknowledged before now can last, under the same
// clock) and the latest expiry among the records read.

const leaseStateMagic = "tarn leases v1"

// rebuildBatch is how many records rebuildLeases copies per transaction.
const rebuildBatch = 8192

// leaseState is the parsed state file.
type leaseState struct {
	open    bool
	ceiling int64 // unix seconds: no acknowledged lease of this run expires later
	floor   int64 // unix seconds: the crawler removes nothing before
}

// errLeaseState is wrapped by every parse error of a state file.
var errLeaseState = errors.New("bad lease state file")

func (s leaseState) marshal() []byte {
	st := "closed"
	if s.open {
		st = "open"
	}
	return fmt.Appendf(nil, "%s\nstate %s\nceiling %d\nfloor %d\n", leaseStateMagic, st, s.ceiling, s.floor)
}

// parseLeaseState parses a state file; it never panics on bad input.
func parseLeaseState(b []byte) (leaseState, error) {
	var s leaseState
	if len(b) > 1024 {
		return s, fmt.Errorf("%w: %d bytes", errLeaseState, len(b))
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 5 || lines[4] != "" {
		return s, fmt.Errorf("%w: want 4 lines", errLeaseState)
	}
	if lines[0] != leaseStateMagic {
		return s, fmt.Errorf("%w: first line %q", errLeaseState, lines[0])
	}
	switch lines[1] {
	case "state open":
		s.open = true
	case "state closed":
	default:
		return s, fmt.Errorf("%w: state line %q", errLeaseState, lines[1])
	}
	num := func(line, key string) (int64, error) {
		v, ok := strings.CutPrefix(line, key+" ")
		if !ok {
			return 0, fmt.Errorf("%w: want %s, got %q", errLeaseState, key, line)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return 0, fmt.Errorf("%w: %s %q", errLeaseState, key, v)
		}
		return n, nil
	}
	var err error
	if s.ceiling, err = num(lines[2], "ceiling"); err != nil {
		return s, err
	}
	if s.floor, err = num(lines[3], "floor"); err != nil {
		return s, err
	}
	return s, nil
}

// writeLeaseState replaces the state file durably.
func writeLeaseState(path string, s leaseState) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write lease state %s: %w", path, err)
	}
	_, err = f.Write(s.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write lease state %s: %w", path, err)
	}
	return nil
}

// lockLeases takes the lease files for this process: an exclusive flock
// on path + ".lock", held until the store closes, tried for up to two
// seconds (as bbolt waits for its own lock). Taken before the state file
// is read or written, so that a second process on the same files can
// neither rewrite the running one's ceiling nor rebuild its db.
func lockLeases(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock lease db %s: %w", path, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := filelock.TryLock(f)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, filelock.ErrWouldBlock) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock lease db %s: in use by another process: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// leaseOpen is what openLeases found, for the server's log.
type leaseOpen struct {
	unclean bool      // the last run did not close the db
	floor   time.Time // the crawler removes nothing before (zero: none)
	kept    int       // records copied into the rebuilt db
	readErr error     // why the old db could not be read whole, if so
}

// rebuildLeases copies every well-formed lease record of the db at path
// into a fresh db and puts it in its place. The old file is read with
// bbolt's checks and a fault in its mapping turned into panics, which are
// recovered: what was read before one is kept.
func rebuildLeases(path string) (kept int, latest int64, readErr, err error) {
	tmp := path + ".rebuild"
	os.Remove(tmp)
	ndb, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: true}) // synced once, below
	if err != nil {
		return 0, 0, nil, fmt.Errorf("rebuild lease db %s: %w", path, err)
	}
	// Records go over in batches, so a large db is never held in memory.
	var batch [][2][]byte
	flush := func() error {
		err := ndb.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(leaseBucket)
			if err != nil {
				return err
			}
			bk.FillPercent = 1 // the records come in key order
			for _, r := range batch {
				if err := bk.Put(r[0], r[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			kept += len(batch)
		}
		batch = batch[:0]
		return err
	}
	var writeErr error
	readErr = func() (err error) {
		old := debug.SetPanicOnFault(true)
		defer debug.SetPanicOnFault(old)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("reading the old lease db panicked: %v", r)
			}
		}()
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			bk := tx.Bucket(leaseBucket)
			if bk == nil {
				return nil
			}
			return bk.ForEach(func(k, v []byte) error {
				if len(k) != leaseKeySize || len(v) != 8 {
					return nil
				}
				batch = append(batch, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
				latest = max(latest, int64(min(binary.BigEndian.Uint64(v), 1<<62)))
				if len(batch) == rebuildBatch {
					if writeErr = flush(); writeErr != nil {
						return writeErr
					}
				}
				return nil
			})
		})
	}()
	if writeErr != nil {
		readErr = nil // not the old db's fault
	} else {
		writeErr = flush() // the rest, and the bucket even when empty
	}
	if writeErr == nil {
		writeErr = ndb.Sync()
	}
	if cerr := ndb.Close(); writeErr == nil {
		writeErr = cerr
	}
	if writeErr == nil {
		writeErr = os.Rename(tmp, path)
	}
	if writeErr == nil {
		writeErr = syncDir(filepath.Dir(path))
	}
	if writeErr != nil {
		os.Remove(tmp)
		return 0, 0, readErr, fmt.Errorf("rebuild lease db %s: %w", path, writeErr)
	}
	return kept, latest, readErr, nil
}
