package vdrive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tarnfs/tarn/host/filelock"
)

// JournalFile's layout: journalMagic, then batches, each the records of
// one group commit: a u32 payload length, the payload's u32 CRC-32C, and
// the payload: entries of a u8 kind (journalPut, journalDel), a u64 record
// key, and for a put a u32 value length and the value. A batch is written
// with one write and made durable by one fdatasync (bbolt, before, took
// two per commit: its pages, then its meta page). A batch cut short, or
// whose CRC does not match, was being written when the node or machine
// died, and so was never acknowledged: the journal ends before it, and
// the open cuts it off. The file is rewritten with its live records alone
// once it is journalCompactAt long and mostly records already deleted.

const journalMagic = "tarn link journal 1\n"

const (
	journalPut byte = 1
	journalDel byte = 2
)

// journalCompactAt: a journal this long that is mostly deleted records
// is rewritten (~5,000 files of rclone's uploads; a few fsyncs, then).
const journalCompactAt = 4 << 20

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// journal is the link journal and its group commit.
type journal struct {
	path string

	mu      sync.Mutex
	seq     uint64
	waiting []*journalOp
	busy    bool

	// wmu is held while the file is written (by the commit leading).
	wmu       sync.Mutex
	f         *os.File
	size      int64             // end of the last batch written whole
	live      map[uint64][]byte // records not deleted
	liveBytes int64
	// broken: a write failed and could not be cut off; every later
	// commit fails (the next start reads the journal up to the damage).
	broken error
	// dirPending: a rewrite took the journal's name, and its folder's
	// fsync failed: no commit is acknowledged until one succeeds.
	dirPending bool
	// A streak of failed rewrites (compactFails of them) is retried only
	// once the file is compactRetrySize long or at compactRetryAt, not at
	// every commit: each try costs a write and fsync of the live set
	// before its commit's callers are answered.
	compactFails     int
	compactRetrySize int64
	compactRetryAt   time.Time
	// log gets a streak's first failure and its end (setLogger); a
	// failure before it is set (at the open) waits in unlogged.
	log      hclog.Logger
	unlogged error

	// n counts its commits, for measuring the group commit.
	n journalCounts
}

// journalCounts: batches written (one write and one fdatasync each),
// the callers' commits they held, the records put and deleted, and the
// time spent writing them.
type journalCounts struct {
	txs, ops, puts, dels atomic.Int64
	ns                   atomic.Int64
}

// journalOp is one caller's writes: records to put and keys to delete.
type journalOp struct {
	puts map[uint64][]byte
	dels []uint64
	err  error
	// done gets false when err is final, true when this caller is to
	// commit for the others waiting.
	done chan bool
}

// openJournal opens (making it if needed) the journal at path, taking
// over an older version's journal beside it, and returns its records by
// key, in key order.
func openJournal(path string) (*journal, []uint64, map[uint64][]byte, error) {
	f, err := openLocked(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open link journal %s: %w", path, err)
	}
	fail := func(err error) (*journal, []uint64, map[uint64][]byte, error) {
		f.Close()
		return nil, nil, nil, fmt.Errorf("link journal %s: %w", path, err)
	}
	// It holds folder write caps: the node's user alone may read it, even
	// when an older run or a copy left it open to others.
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	// A rewrite's file left by a crash before it took the journal's name
	// (compact): the journal is whole without it, and it holds caps.
	removeRewriteLeftovers(path)
	b, err := io.ReadAll(f)
	if err != nil {
		return fail(err)
	}
	j := &journal{path: path, f: f, live: map[uint64][]byte{}}
	if len(b) <= len(journalMagic) && (bytes.HasPrefix([]byte(journalMagic), b) || len(bytes.Trim(b, "\x00")) == 0) {
		// Died making the file, before its first line was durable: no
		// record was ever acknowledged in it.
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		b = nil
	}
	if len(b) == 0 {
		// A new file's name is durable only once its folder is synced:
		// records acknowledged after a power loss soon after must not go
		// with the file.
		if _, err := f.WriteAt([]byte(journalMagic), 0); err != nil {
			return fail(err)
		}
		if err := f.Sync(); err != nil {
			return fail(err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(err)
		}
		j.size = int64(len(journalMagic))
	} else if err := j.load(b); err != nil {
		return fail(err)
	}
	old := filepath.Join(filepath.Dir(path), oldJournalFile)
	if _, err := os.Stat(old); err == nil {
		recs, err := readBoltJournal(old)
		if err != nil {
			return fail(err)
		}
		puts := j.takeOver(recs)
		if len(puts) > 0 {
			if err := j.write([]*journalOp{{puts: puts}}); err != nil {
				return fail(err)
			}
		}
		if err := os.Remove(old); err != nil {
			return fail(err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(err)
		}
	}
	if j.size > journalCompactAt/4 && j.size > 2*(j.liveBytes+int64(len(journalMagic))) {
		// A failure leaves the journal whole, only longer: the node
		// starts all the same, and writes retry it (backing off).
		j.wmu.Lock()
		j.tryCompact()
		broken := j.broken
		j.wmu.Unlock()
		if broken != nil {
			return fail(broken)
		}
	}
	return j, slices.Sorted(maps.Keys(j.live)), maps.Clone(j.live), nil
}

// takeOver returns the records of an older version's journal to put in
// this one, under keys of their own after every key the log has used.
// The older version ignored the log and began its keys at 1 again, so
// its keys mean nothing here: they may be live in the log with other
// records (a downgrade, then an upgrade). Its records were made after
// every record of the log (an upgrade from it finds an empty log; a
// downgrade's ones come after the log stopped being written), so they
// replay after them, in their own order. A value live in the log already
// is skipped: a stop after this takeover was durable, before the old
// file was removed, takes nothing over twice.
func (j *journal) takeOver(recs map[uint64][]byte) map[uint64][]byte {
	have := make(map[string]bool, len(j.live))
	for _, v := range j.live {
		have[string(v)] = true
	}
	puts := map[uint64][]byte{}
	for _, id := range slices.Sorted(maps.Keys(recs)) {
		v := recs[id]
		if have[string(v)] {
			continue
		}
		have[string(v)] = true
		j.seq++
		puts[j.seq] = v
	}
	return puts
}

// removeRewriteLeftovers removes the files a rewrite (compactLocked)
// makes beside the journal at path and a crash left there: exactly the
// names os.CreateTemp gives for its pattern (the journal's name, a dot,
// decimal digits). Listed rather than globbed: the state folder's path
// may hold glob characters; and never the damaged journals kept for a
// human (JournalFile-damaged-TIME), nor files of other names.
func removeRewriteLeftovers(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+"."
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// journalLockWait is how long an open waits for another process (a
// node stopping) to let go of the journal.
var journalLockWait = 5 * time.Second

// openLocked opens (making it if needed) the file at path and takes an
// exclusive flock on it, as bbolt did: two processes appending to one
// journal would interleave their batches.
func openLocked(path string) (*os.File, error) {
	deadline := time.Now().Add(journalLockWait)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		err = filelock.TryLock(f)
		if err == nil {
			// The holder may have replaced the file (compact) before it
			// let go: the lock must be on the file at path.
			fi, ferr := f.Stat()
			pi, perr := os.Stat(path)
			if ferr == nil && perr == nil && os.SameFile(fi, pi) {
				return f, nil
			}
			f.Close()
			continue
		}
		f.Close()
		if !errors.Is(err, filelock.ErrWouldBlock) {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, errors.New("in use by another process (another node over the same state folder?)")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// load reads the journal's batches from b, its whole file, and cuts off
// a last batch written in part.
func (j *journal) load(b []byte) error {
	if !bytes.HasPrefix(b, []byte(journalMagic)) {
		return errors.New("not a link journal (its first line differs)")
	}
	off := len(journalMagic)
	damaged := false
	for len(b)-off >= 8 {
		if n, ok := validFrame(b, off); ok {
			if err := j.apply(b[off+8 : off+8+n]); err != nil {
				return fmt.Errorf("batch at byte %d: %w", off, err)
			}
			off += 8 + n
			continue
		}
		// Bad group: a torn tail (nothing whole after it), or damage in
		// the middle of acknowledged groups: resync at the next whole one.
		next := -1
		for o := off + 1; o+8 <= len(b); o++ {
			if _, ok := validFrame(b, o); ok {
				next = o
				break
			}
		}
		if next < 0 {
			break
		}
		damaged = true
		off = next
	}
	j.size = int64(off)
	if damaged {
		// Keep the damaged file for a human (a name the open's clean-up
		// of rewrite files does not match), then rewrite the live set.
		if err := os.WriteFile(fmt.Sprintf("%s-damaged-%d", j.path, time.Now().Unix()), b, 0o600); err != nil {
			return err
		}
		j.size = int64(len(b)) // forces the open's rewrite below
		j.liveBytes = 0
		for _, v := range j.live {
			j.liveBytes += int64(13 + len(v))
		}
		_, err := j.compactLocked()
		return err
	}
	if off < len(b) {
		// Never acknowledged: its writer died before its fdatasync ended.
		if err := j.f.Truncate(j.size); err != nil {
			return err
		}
		if err := fdatasync(j.f); err != nil {
			return err
		}
	}
	return nil
}

// validFrame reports whether a whole group with a matching CRC and a
// non-empty payload (CRC-32C of nothing is 0: zeros are no group) starts
// at off, and its payload's length.
func validFrame(b []byte, off int) (int, bool) {
	if len(b)-off < 8 {
		return 0, false
	}
	n := int64(binary.BigEndian.Uint32(b[off:]))
	if n == 0 || int64(len(b)-off-8) < n {
		return 0, false
	}
	p := b[off+8 : off+8+int(n)]
	return int(n), crc32.Checksum(p, journalCRC) == binary.BigEndian.Uint32(b[off+4:])
}

// apply takes a batch's entries into live, all or none.
func (j *journal) apply(p []byte) error {
	type entry struct {
		kind byte
		id   uint64
		v    []byte
	}
	var es []entry
	for len(p) > 0 {
		if len(p) < 9 {
			return errors.New("entry cut short")
		}
		e := entry{kind: p[0], id: binary.BigEndian.Uint64(p[1:])}
		p = p[9:]
		switch e.kind {
		case journalPut:
			if len(p) < 4 || uint64(len(p)-4) < uint64(binary.BigEndian.Uint32(p)) {
				return errors.New("record cut short")
			}
			n := int(binary.BigEndian.Uint32(p))
			e.v, p = slices.Clone(p[4:4+n]), p[4+n:]
		case journalDel:
		default:
			return fmt.Errorf("entry of kind %d", e.kind)
		}
		es = append(es, e)
	}
	for _, e := range es {
		j.seq = max(j.seq, e.id)
		if e.kind == journalPut {
			j.put(e.id, e.v)
		} else {
			j.del(e.id)
		}
	}
	return nil
}

func (j *journal) put(id uint64, v []byte) {
	j.del(id)
	j.live[id] = v
	j.liveBytes += int64(13 + len(v))
}

func (j *journal) del(id uint64) {
	if old, ok := j.live[id]; ok {
		j.liveBytes -= int64(13 + len(old))
		delete(j.live, id)
	}
}

// next reserves a record key; keys grow in the order they are reserved.
func (j *journal) next() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	return j.seq
}

// commit writes puts and deletes dels durably (together with other
// callers' commits under way), returning once they are on disk.
func (j *journal) commit(puts map[uint64][]byte, dels []uint64) error {
	op := &journalOp{puts: puts, dels: dels, done: make(chan bool, 1)}
	j.mu.Lock()
	j.waiting = append(j.waiting, op)
	lead := !j.busy
	j.busy = true
	j.mu.Unlock()
	if !lead && !<-op.done {
		return op.err
	}
	// Lead: commit everything waiting (this caller's own op among it),
	// then hand the lead to the first caller that came meanwhile.
	j.mu.Lock()
	batch := j.waiting
	j.waiting = nil
	j.mu.Unlock()
	err := j.write(batch)
	if err != nil {
		err = fmt.Errorf("write link journal: %w", err)
	}
	for _, o := range batch {
		o.err = err
		if o != op {
			o.done <- false
		}
	}
	j.mu.Lock()
	if len(j.waiting) == 0 {
		j.busy = false
		j.mu.Unlock()
	} else {
		next := j.waiting[0]
		j.mu.Unlock()
		next.done <- true
	}
	return op.err
}

// write appends batch as one batch of the file, fdatasynced.
func (j *journal) write(batch []*journalOp) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.broken != nil {
		return j.broken
	}
	t0 := time.Now()
	frame := make([]byte, 8, 8+64*len(batch))
	for _, o := range batch {
		frame = appendPuts(frame, o.puts)
		for _, id := range o.dels {
			frame = append(frame, journalDel)
			frame = binary.BigEndian.AppendUint64(frame, id)
		}
	}
	sealBatch(frame)
	_, err := j.f.WriteAt(frame, j.size)
	if err == nil {
		err = fdatasync(j.f)
	}
	if err == nil && j.dirPending {
		if err = syncDir(filepath.Dir(j.path)); err == nil {
			j.dirPending = false
		}
	}
	j.n.txs.Add(1)
	j.n.ops.Add(int64(len(batch)))
	j.n.ns.Add(int64(time.Since(t0)))
	if err != nil {
		// Not acknowledged: cut it off, so that a later batch is not
		// written after one the next open would stop at, and sync the
		// cut: its callers were told it failed, so a power loss must not
		// bring it back for replay.
		terr := j.f.Truncate(j.size)
		if terr == nil {
			terr = fdatasync(j.f)
		}
		if terr != nil {
			j.broken = fmt.Errorf("link journal damaged by a failed write (%v) that could not be cut off: %w", err, terr)
		}
		return err
	}
	j.size += int64(len(frame))
	for _, o := range batch {
		j.n.puts.Add(int64(len(o.puts)))
		j.n.dels.Add(int64(len(o.dels)))
		for id, v := range o.puts {
			j.put(id, v)
		}
		for _, id := range o.dels {
			j.del(id)
		}
	}
	if j.size > journalCompactAt && j.size > 4*(j.liveBytes+int64(len(journalMagic))) && j.compactDue() {
		j.tryCompact()
	}
	return nil
}

// compact rewrites the journal with its live records alone.
func (j *journal) compact() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	_, err := j.compactLocked()
	return err
}

// compactRetryEvery: a rewrite that failed is tried again once this long
// has passed, or once the journal grew by journalCompactAt.
var compactRetryEvery = time.Minute

// compactDue reports whether a rewrite may be tried: none failed since
// the last one that succeeded, or the failed one's back-off is over.
func (j *journal) compactDue() bool {
	return j.compactFails == 0 || j.size >= j.compactRetrySize || !time.Now().Before(j.compactRetryAt)
}

// tryCompact rewrites the journal (wmu held). A failure before the rename
// leaves the file as it is, whole, only longer, and backs the next try
// off; one after it leaves the new file the journal (dirPending: the next
// write syncs its folder first). It logs a streak of failures once, at
// its first, and its end.
func (j *journal) tryCompact() {
	replaced, err := j.compactLocked()
	if j.broken != nil && j.log != nil {
		j.log.Error("the link journal cannot be written after its rewrite; write-behind commits fail until the node restarts", "path", j.path, "error", j.broken)
	}
	if err == nil || replaced {
		if j.compactFails > 0 && j.log != nil {
			j.log.Info("the link journal is rewritten again", "path", j.path, "failed_tries", j.compactFails)
		}
		j.compactFails, j.unlogged = 0, nil
		return
	}
	j.compactFails++
	j.compactRetrySize = j.size + journalCompactAt
	j.compactRetryAt = time.Now().Add(compactRetryEvery)
	if j.compactFails == 1 {
		j.unlogged = err
		j.logCompactFailure()
	}
}

// logCompactFailure logs the failure of the streak under way, once.
func (j *journal) logCompactFailure() {
	if j.log == nil || j.unlogged == nil {
		return
	}
	j.log.Warn("the link journal cannot be rewritten without its made links; it grows, and is tried again every minute or 4 MiB (docs/operations.md)",
		"path", j.path, "size", j.size, "live", j.liveBytes, "error", j.unlogged)
	j.unlogged = nil
}

// setLogger gives the journal the node's log, logging there a failure
// of the open's rewrite.
func (j *journal) setLogger(l hclog.Logger) {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.log = l
	j.logCompactFailure()
}

// compactReopen: the rewrite takes the journal's name with the journal
// and the new file both closed, then opens and locks the new one. On
// Windows a file Go opened (without FILE_SHARE_DELETE) can be neither
// renamed nor replaced while open: the rename would fail at every try.
// The lock is let go meanwhile: another process that takes it then
// leaves this journal broken (commits fail); one that took the old
// file's lock and checked its name just before the rename would write
// to the old, unlinked file (two nodes over one state folder: what the
// lock guards against, not a supported case).
var compactReopen = runtime.GOOS == "windows"

// renameFile is os.Rename; tests make it fail as Windows does.
var renameFile = os.Rename

var compactFault func() error

// compactLocked rewrites the journal with its live records alone (wmu
// held), reporting whether the new file became the journal.
func (j *journal) compactLocked() (replaced bool, err error) {
	if compactFault != nil {
		if err := compactFault(); err != nil {
			return false, err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
		}
	}()
	frame := appendPuts(make([]byte, 8, 8+j.liveBytes), j.live)
	sealBatch(frame)
	out := append([]byte(journalMagic), frame...)
	if len(frame) == 8 {
		out = []byte(journalMagic)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return false, err
	}
	// Locked before it takes the journal's name (openLocked).
	if err := filelock.TryLock(tmp); err != nil {
		return false, err
	}
	if _, err := tmp.Write(out); err != nil {
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		return false, err
	}
	if compactReopen {
		if err := tmp.Close(); err != nil {
			return false, err
		}
		j.f.Close()
		rerr := renameFile(tmp.Name(), j.path)
		// The file at the path now, whole either way: the new one, or
		// the journal as it was when the rename failed.
		f, err := reopenLocked(j.path)
		if err != nil {
			j.broken = fmt.Errorf("link journal closed for its rewrite and not opened again: %w", err)
			return rerr == nil, j.broken
		}
		j.f = f
		if rerr != nil {
			return false, rerr
		}
	} else {
		if err := renameFile(tmp.Name(), j.path); err != nil {
			return false, err
		}
		// From here the journal is tmp, whatever comes.
		ok = true
		j.f.Close()
		j.f = tmp
	}
	j.size = int64(len(out))
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		j.dirPending = true // write syncs it before acknowledging
		return true, err
	}
	return true, nil
}

// reopenLocked opens the journal at path again after a rewrite closed it
// (compactReopen) and takes its lock back.
func reopenLocked(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := filelock.TryLock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}

func (j *journal) close() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	return j.f.Close()
}

// appendPuts appends the put entries of recs to a batch, in key order.
func appendPuts(frame []byte, recs map[uint64][]byte) []byte {
	for _, id := range slices.Sorted(maps.Keys(recs)) {
		v := recs[id]
		frame = append(frame, journalPut)
		frame = binary.BigEndian.AppendUint64(frame, id)
		frame = binary.BigEndian.AppendUint32(frame, uint32(len(v)))
		frame = append(frame, v...)
	}
	return frame
}

// sealBatch fills in a batch's length and CRC (its first 8 bytes).
func sealBatch(frame []byte) {
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-8))
	binary.BigEndian.PutUint32(frame[4:], crc32.Checksum(frame[8:], journalCRC))
}
