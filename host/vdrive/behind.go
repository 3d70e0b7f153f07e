package vdrive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
)

// Write-behind of directory links. A frontend's new file (Writer.Close,
// PutLinked of a drive opened WithWriteBehind) is on the grid before it is
// linked; instead of changing its folder before answering, the drive
// writes the link (folder, name, child cap, metadata) to a journal on the
// node's disk, fsynced (concurrent links share one fsync), and answers. A
// folder's pending links are made later together, in one directory
// change: after Delay, at once when FlushAt of them wait, or as soon as
// another operation needs the folder's real state. A journal record is
// deleted only once the change holding its link succeeded; at start the
// journal is replayed. So an acknowledged file is never lost, and a burst
// of new files in one folder costs one directory change per Delay instead
// of one per file.
//
// Write-behind has backpressure, as a write-back cache's dirty limit: while
// a folder's links are being retried after a failed change, or while it
// has DefaultMaxPending (BehindConfig.MaxPending) links not yet made, a
// new link into it is not journaled: the caller makes the folder's change
// itself (with the pending links), as without write-behind, and gets its
// error. So a folder the grid refuses does not acknowledge files without
// bound that no other node sees; its links already acknowledged stay in
// the journal and are retried, and once a change of it succeeds (the
// caller's or the retry's), new links are written behind again.
//
// Every Drive opened over the same *Behind (vdrive.New with it as the
// store) sees the pending links at once: Stat, StatCached, Open and
// Create answer a pending name from its link; every other operation on a
// folder with pending links (ReadDir, Remove, Rename, Mkdir, LinkMany, a
// directory's emptiness, Stat of the root) first makes them, and queued
// changes (SetMetadata, Link, linking without write-behind) make them in
// the same directory change, before their own. Those drives also share
// their directory-change queues, cached directory roots and decoded
// directory chunks, so a change made through one is seen through the
// others at once, without reading back the chunks it wrote.
//
// A link that cannot be made (a directory was put at its name meanwhile,
// the folder is damaged, the folder is no longer at its path:
// behind_path.go, the entry changed since, found at a replay:
// behind_replay.go) is logged at ERROR with its name and read cap, and
// appended to FailedLinksFile (behind_failed.go); it is never dropped
// silently. Links the grid refuses are retried until made, and shown in
// Stats and the log (behind_stats.go).

// JournalFile and FailedLinksFile are the write-behind's files in its
// folder (the node's state folder).
const (
	JournalFile     = "links-journal.log"
	FailedLinksFile = "failed-links.jsonl"
)

// DefaultFlushAt is how many pending links of one folder make it change
// at once.
const DefaultFlushAt = 128

// DefaultMaxPending is how many links of one folder may wait to be made
// before a new link into it is made at once (backpressure).
const DefaultMaxPending = 1024

// maxLinksPerChange bounds the pending links one directory change makes.
const maxLinksPerChange = 1024

// maxRetryDelay bounds the wait before a failed directory change of
// pending links is tried again.
const maxRetryDelay = 30 * time.Second

// BehindConfig configures a node's write-behind.
type BehindConfig struct {
	// Dir holds JournalFile and FailedLinksFile.
	Dir string
	// Delay is how long a link waits for others of its folder. 0: drives
	// link before answering, as without write-behind (a journal left by
	// an earlier run is still replayed).
	Delay time.Duration
	// FlushAt pending links of one folder make it change at once (0:
	// DefaultFlushAt).
	FlushAt int
	// MaxPending links of one folder not yet made make a new link into
	// it synchronous, as its failed change does until one succeeds (0:
	// DefaultMaxPending).
	MaxPending int
	// Logger gets replays, retries and failed links (nil: none).
	Logger hclog.Logger
	// WarnEvery is how often a folder whose changes keep failing is
	// logged at WARN (0: DefaultWarnEvery; behind_stats.go).
	WarnEvery time.Duration
	// PathCacheTTL: a folder on a link's path read (or written by this
	// node) within it is trusted by the path check without a fresh read;
	// a verdict of "gone" is always confirmed on fresh reads (0:
	// DefaultPathCacheTTL; negative: every walk reads fresh;
	// behind_path.go).
	PathCacheTTL time.Duration
}

// Behind is the write-behind of one node: its journal, its pending links
// and their flusher. It is a Store: drives opened over it (vdrive.New)
// share it, and a reader of a folder's slot through it (ReadMutable,
// Modify) gets the pending links made first.
type Behind struct {
	inner Store
	cfg   BehindConfig
	log   hclog.Logger
	j     *journal // nil: none (Delay 0 and no journal left)
	sh    *shared
	d     *Drive // makes the flushes
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu     sync.Mutex
	dirs   map[cap.MutableRead]*behindDir
	dead   []uint64 // records of links replaced before they were made
	closed bool

	failMu sync.Mutex
	st     behindCounts // behind_stats.go
	moves  ownMoves     // behind_path.go
	// moveMu: add holds it shared from reading moves until its link is
	// pending, flushUnder alone while it adds a move (behind_path.go).
	moveMu sync.RWMutex
}

var _ Store = (*Behind)(nil)

// shared is what the drives of one Behind share. chunks is their one
// cache of decoded directory chunks: a chunk one drive wrote (the
// flusher's change, another frontend's) is not read back from the grid
// by another drive's next look-up in that bucket (chunks are immutable
// and named by their cap, so any drive may use any cached one).
type shared struct {
	queues  dirQueues
	reads   slotReads
	writing writingDirs
	roots   rootMap
	chunks  *dirnode.Cache
}

// behindDir is one folder's links: pending (not yet taken by a change,
// the latest per name) and in flight (taken by the change under way).
type behindDir struct {
	ref      dirRef
	pending  map[string]*plink
	inflight map[string]*plink
	timer    *time.Timer
	retries  int
	// failingSince is when its changes started failing (zero: they do
	// not), lastWarn when that was last logged at WARN (behind_stats.go).
	failingSince, lastWarn time.Time
	// busy names are being journaled (add, setMeta), one at a time per
	// name, so that the journal's order of a name's records is the order
	// they are made pending in.
	busy map[string]chan struct{}
	// own: what each name with links not yet made may hold by this
	// node's doing, for their records (behind_own.go).
	own map[string]*ownName
}

// plink is one pending link.
type plink struct {
	id  uint64
	rec linkRecord
	err error // of its last apply
	// at is when it was acknowledged; replayed: read from the journal at
	// start (behind_replay.go); gone: its folder is not at its path, or
	// could not be shown to be, by the check before this change
	// (behind_path.go).
	at       time.Time
	replayed bool
	gone     error
}

func (l *plink) entry() dirnode.Entry {
	return dirnode.Entry{Name: l.rec.Name, ReadCap: l.rec.Cap,
		Meta: Metadata{Type: TypeFile, Size: l.rec.Size, Ctime: l.rec.Ctime, Mtime: l.rec.Mtime, Extra: l.rec.Extra}}
}

// apply makes the link in tx as linkFile does (keeping an older file's
// ctime and extra keys), leaving tx untouched on error.
func (l *plink) apply(tx *dirnode.Tx) error {
	if l.gone != nil {
		return l.gone
	}
	if err := l.replayCheck(tx); err != nil {
		return err
	}
	if !l.rec.Meta {
		_, _, err := setFile(tx, l.rec.Name, l.rec.Cap, l.rec.Size, l.rec.Mtime)
		return err
	}
	if old, ok, err := tx.Get(l.rec.Name); err != nil {
		return err
	} else if ok && old.Meta.Type == TypeDir {
		return ErrIsDir
	}
	return setEntry(tx, l.rec.Name, l.rec.Cap, "", l.entry().Meta)
}

// OpenBehind opens the write-behind over store in cfg.Dir and replays the
// links its journal holds: they are visible at once through drives
// opened over it, and made in the background as soon as the grid takes
// them. Close it before the store's grid client.
func OpenBehind(store Store, cfg BehindConfig) (*Behind, error) {
	if store == nil {
		return nil, errors.New("vdrive write-behind: no store")
	}
	if _, ok := store.(*Behind); ok {
		return nil, errors.New("vdrive write-behind: the store is a write-behind already")
	}
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("vdrive write-behind: negative delay %s", cfg.Delay)
	}
	if cfg.FlushAt <= 0 {
		cfg.FlushAt = DefaultFlushAt
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	b := &Behind{inner: store, cfg: cfg, log: log, sh: &shared{chunks: dirnode.NewCache(DefaultCacheEntries)}, dirs: map[cap.MutableRead]*behindDir{}}
	b.ctx, b.stop = context.WithCancel(context.Background())
	b.d = &Drive{store: store, chunks: chunks{store}, now: time.Now}
	b.attach(b.d)
	path := filepath.Join(cfg.Dir, JournalFile)
	if cfg.Delay == 0 {
		_, err := os.Stat(path)
		_, oldErr := os.Stat(filepath.Join(cfg.Dir, oldJournalFile))
		if errors.Is(err, os.ErrNotExist) && errors.Is(oldErr, os.ErrNotExist) {
			return b, nil
		}
	}
	j, keys, recs, err := openJournal(path)
	if err != nil {
		return nil, err
	}
	b.j = j
	j.setLogger(b.log)
	if err := b.replay(keys, recs); err != nil {
		j.close()
		return nil, err
	}
	return b, nil
}

// attach makes d share b's state.
func (b *Behind) attach(d *Drive) {
	d.behind = b
	d.queues = &b.sh.queues
	d.reads = &b.sh.reads
	d.writing = &b.sh.writing
	d.roots.m = &b.sh.roots
	d.roots.shared = true
	d.cache = b.sh.chunks
}

// replay takes the journal's records as pending links and starts making
// them. A record that cannot be read is kept in the failed links.
func (b *Behind) replay(keys []uint64, recs map[uint64][]byte) error {
	var bad []uint64
	for _, id := range keys {
		rec, err := decodeRecord(recs[id])
		var ref dirRef
		if err == nil {
			ref, err = recordRef(rec)
		}
		if err != nil {
			if ferr := b.writeFailed(FailedLink{Time: time.Now().UTC(), Record: string(recs[id]), Error: err.Error()}); ferr != nil {
				return fmt.Errorf("replay link journal: %w (and keeping the record failed: %v)", err, ferr)
			}
			// Not the record itself: it holds the folder's write cap, and
			// logs are not secret (the failed links are, 0600).
			b.log.Error("a journaled link cannot be read; its record is kept in the failed links", "key", id, "error", err,
				"failed_links", filepath.Join(b.cfg.Dir, FailedLinksFile))
			bad = append(bad, id)
			continue
		}
		at := rec.At
		if at.IsZero() {
			at = time.Now()
		}
		b.insert(ref, &plink{id: id, rec: rec, at: at, replayed: true})
	}
	// A name's state starts from its latest record, the one replayed
	// (behind_own.go).
	b.mu.Lock()
	for _, bd := range b.dirs {
		for name, l := range bd.pending {
			bd.own[name] = newOwnName(l.rec)
		}
	}
	b.mu.Unlock()
	if len(bad) > 0 {
		if err := b.j.commit(nil, bad); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k, bd := range b.dirs {
		n += len(bd.pending)
		b.armLocked(k, bd, 0)
	}
	if n > 0 {
		b.log.Info("replaying links journaled before the last stop", "links", n, "folders", len(b.dirs))
	}
	b.st.replayed = n
	return nil
}

// recordRef checks a record and returns its folder.
func recordRef(rec linkRecord) (dirRef, error) {
	c, err := cap.Parse(rec.Dir)
	if err != nil {
		return dirRef{}, fmt.Errorf("folder cap: %w", err)
	}
	w, ok := c.(cap.DirWrite)
	if !ok {
		return dirRef{}, fmt.Errorf("folder cap is a %s cap, want tarn:dir:", c.Kind())
	}
	if n, err := dirnode.CleanName(rec.Name); err != nil || n != rec.Name {
		return dirRef{}, fmt.Errorf("name %q is not clean", rec.Name)
	}
	if _, err := cap.Parse(rec.Cap); err != nil {
		return dirRef{}, fmt.Errorf("child cap: %w", err)
	}
	if _, _, _, err := recordPath(rec); err != nil {
		return dirRef{}, err
	}
	for _, p := range rec.Moved {
		if parts, err := SplitPath(p); rec.Root == "" || err != nil || JoinPath(parts) != p {
			return dirRef{}, fmt.Errorf("moved path %q is not clean or has no root", p)
		}
	}
	return dirRef{r: w.ReadCap(), w: &w}, nil
}

// deferring reports whether drives opened WithWriteBehind defer links.
func (b *Behind) deferring() bool { return b.cfg.Delay > 0 && b.j != nil }

// add journals rec, a link in ref, and makes it pending. A link of the
// name not yet made whose metadata was set (setMeta) passes its ctime and
// extra keys on as its own record: the older record is dropped, and
// rec's apply would otherwise take them from the folder, which never
// held them. A folder under backpressure (throttled) gets rec made now
// instead, and its change's error is add's. The caller holds rec.Name
// (lockName) since before it looked up what the name holds (rec.Prev,
// rec.Also), so that no link of the name this node makes meanwhile is
// missing from them.
func (b *Behind) add(ctx context.Context, ref dirRef, rec linkRecord) error {
	rec.Dir = ref.w.String()
	if rec.At.IsZero() {
		rec.At = time.Now().UTC()
	}
	if l, ok := b.lookup(ref.r.Slot, rec.Name); ok && l.rec.Meta && !rec.Meta {
		rec.Meta, rec.Ctime, rec.Extra = true, l.rec.Ctime, l.rec.Extra
		// Its link of a new cap leaves just this metadata: checked
		// (Base not nil) against that alone.
		rec.Base = []string{metaPrint((&plink{rec: rec}).entry().Meta)}
	}
	if b.throttled(ref.r.Slot) {
		return b.linkNow(ctx, ref, rec)
	}
	// A move of this node's starting now waits until this link is
	// pending (flushUnder then makes it first), or this link sees the
	// move: no link escapes both.
	b.moveMu.RLock()
	defer b.moveMu.RUnlock()
	if rec.Root != "" && rec.Moved == nil {
		// A link into a folder this node is moving (or has moved while
		// the drive's cached path still led to it) carries where the
		// move takes it, in case the node dies before the link is made.
		rec.Moved = b.moves.movesOf(rec.Root, rec.Path)
	}
	// Every link of the name this node may have left there by the time
	// the record is replayed (behind_own.go).
	rec.Prev, rec.Also = b.ownPrior(ref.r.Slot, rec.Name, rec.Prev, rec.Also)
	v, err := encodeRecord(rec)
	if err != nil {
		return fmt.Errorf("journal link: %w", err)
	}
	id := b.j.next()
	b.mu.Lock()
	dead := b.dead
	b.dead = nil
	b.mu.Unlock()
	if err := b.j.commit(map[uint64][]byte{id: v}, dead); err != nil {
		b.mu.Lock()
		b.dead = append(b.dead, dead...)
		b.mu.Unlock()
		return err
	}
	b.insert(ref, &plink{id: id, rec: rec, at: rec.At})
	return nil
}

// throttled reports whether a new link into folder k is to be made at
// once rather than written behind: the folder's last change of pending
// links failed (it is being retried), or MaxPending of its links wait.
func (b *Behind) throttled(k cap.MutableRead) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.dirs[k]
	return bd != nil && (bd.retries > 0 || len(bd.pending)+len(bd.inflight) >= b.cfg.MaxPending)
}

// linkNow makes rec in ref by a change of the folder, which makes its
// pending links too (before rec), as linking without write-behind does;
// a failed change leaves those pending and retried, and rec not made.
// The caller holds rec's name (lockName), so no link of it becomes
// pending meanwhile. add has no caller's context: the change gets the
// flusher's bound.
func (b *Behind) linkNow(ctx context.Context, ref dirRef, rec linkRecord) error {
	// The caller's deadline (a WebDAV request's, an SFTP close's) holds,
	// and the node's Close ends it too.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	// An older pending link of the name must not be made after rec: a
	// change takes at most maxLinksPerChange links, so make the folder's
	// until none of the name waits.
	for {
		old, ok := b.lookup(ref.r.Slot, rec.Name)
		if !ok {
			break
		}
		if err := b.flush(ctx, ref.r.Slot); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.waitsRetry(ref.r.Slot, old) { // behind_stats.go
			return fmt.Errorf("link %s: an earlier link of the name cannot be made for now; its folder's change is retried", rec.Name)
		}
	}
	l := &plink{rec: rec}
	return b.d.editQueued(ctx, ref, l.apply)
}

// lockName waits until no other add or setMeta journals name in ref and
// keeps it so until the returned func is called.
func (b *Behind) lockName(ref dirRef, name string) func() {
	for {
		b.mu.Lock()
		bd := b.dirLocked(ref)
		ch := bd.busy[name]
		if ch == nil {
			ch = make(chan struct{})
			bd.busy[name] = ch
			b.mu.Unlock()
			return func() {
				b.mu.Lock()
				delete(bd.busy, name)
				bd.forgetOwnLocked(name)
				if len(bd.pending)+len(bd.inflight)+len(bd.busy) == 0 && bd.timer == nil && b.dirs[ref.r.Slot] == bd {
					delete(b.dirs, ref.r.Slot)
				}
				b.mu.Unlock()
				close(ch)
			}
		}
		b.mu.Unlock()
		<-ch
	}
}

// dirLocked is ref's links, made when missing.
func (b *Behind) dirLocked(ref dirRef) *behindDir {
	k := ref.r.Slot
	bd := b.dirs[k]
	if bd == nil {
		bd = &behindDir{ref: ref, pending: map[string]*plink{}, inflight: map[string]*plink{}, busy: map[string]chan struct{}{}}
		b.dirs[k] = bd
	}
	return bd
}

// setMeta is SetMetadata of name in ref when a link of it is not yet made:
// pending (not yet taken by a change) or in flight (taken by the change
// under way). fn edits the link's metadata, and the link with its new
// metadata is journaled as a new record and made pending: it replaces a
// pending link (its record leaves the journal in the same commit), and
// after an in-flight one it is made by the folder's next change, which
// sets the entry's metadata (the cap is the same). So a client setting
// each new file's mtime (rclone over SFTP, sftp put -p) does not change
// the folder once per file, even when the folder change of the file's
// link started before the SETSTAT came. A replay makes such a record's
// metadata even when the entry holds its cap already (behind_replay.go):
// the metadata acknowledged here survives a stop at any point. done is
// false when no link of the name is waiting (the caller changes the
// folder).
func (b *Behind) setMeta(ref dirRef, name string, fn func(*Metadata) error) (done bool, err error) {
	defer b.lockName(ref, name)()
	b.mu.Lock()
	bd := b.dirLocked(ref)
	l := bd.pending[name]
	if l == nil {
		l = bd.inflight[name]
	}
	b.mu.Unlock()
	if l == nil {
		return false, nil
	}
	m := cloneMeta(l.entry().Meta)
	if err := fn(&m); err != nil {
		return true, err
	}
	m.Type, m.Size = TypeFile, l.rec.Size
	if err := m.Check(); err != nil {
		return true, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	rec := l.rec
	// What l's link leaves in the entry, if its change is made (or was
	// being made when the node died): the replay of this record makes
	// its metadata only over that (behind_replay.go).
	rec.Base = metaBase(l)
	rec.Ctime, rec.Mtime, rec.Extra, rec.Meta = m.Ctime, m.Mtime, m.Extra, true
	v, err := encodeRecord(rec)
	if err != nil {
		return true, fmt.Errorf("journal link: %w", err)
	}
	id := b.j.next()
	// The old record goes in the same commit: if l is being made now,
	// this one makes it again with its metadata; if that change fails, l
	// is retried as this one (settle drops a link a newer one replaces).
	if err := b.j.commit(map[uint64][]byte{id: v}, []uint64{l.id}); err != nil {
		return true, err
	}
	b.insert(ref, &plink{id: id, rec: rec, at: l.at, replayed: l.replayed})
	return true, nil
}

// insert makes l pending in ref, replacing an older pending link of its
// name (later keys win, as replay applies them) and arming the flush.
func (b *Behind) insert(ref dirRef, l *plink) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := ref.r.Slot
	bd := b.dirLocked(ref)
	name := l.rec.Name
	if f := bd.inflight[name]; f != nil && f.id > l.id {
		b.dead = append(b.dead, l.id)
		return
	}
	if old := bd.pending[name]; old != nil {
		if old.id > l.id {
			b.dead = append(b.dead, l.id)
			return
		}
		b.dead = append(b.dead, old.id)
	}
	bd.pending[name] = l
	bd.ownLocked(name, l)
	// While the folder's changes fail (retries), it waits for its
	// backoff, however many links come: not one failing change per file.
	if len(bd.pending) >= b.cfg.FlushAt && bd.retries == 0 {
		b.armLocked(k, bd, 0)
	} else {
		b.armLocked(k, bd, b.cfg.Delay)
	}
}

// armLocked makes sure a flush of k runs within after.
func (b *Behind) armLocked(k cap.MutableRead, bd *behindDir, after time.Duration) {
	if b.closed {
		return
	}
	if bd.timer != nil {
		if after > 0 {
			return
		}
		if !bd.timer.Stop() {
			return // firing now
		}
	}
	bd.timer = time.AfterFunc(after, func() { b.flushLater(k) })
}

// flushLater is a timer's flush of k.
func (b *Behind) flushLater(k cap.MutableRead) {
	b.mu.Lock()
	bd := b.dirs[k]
	if bd == nil || b.closed {
		b.mu.Unlock()
		return
	}
	bd.timer = nil
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	// A failure is logged and retried by settle.
	_ = b.flush(ctx, k)
	// A folder whose links an operation made while this timer waited
	// was kept for it (settle keeps an armed folder): forget it now.
	b.mu.Lock()
	if bd := b.dirs[k]; bd != nil && bd.timer == nil && len(bd.pending)+len(bd.inflight)+len(bd.busy) == 0 {
		delete(b.dirs, k)
	}
	b.mu.Unlock()
}

// lookup is the pending (or in-flight) link of name in folder k.
func (b *Behind) lookup(k cap.MutableRead, name string) (*plink, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.dirs[k]
	if bd == nil {
		return nil, false
	}
	if l := bd.pending[name]; l != nil {
		return l, true
	}
	l := bd.inflight[name]
	return l, l != nil
}

// has reports whether folder k has links not yet made.
func (b *Behind) has(k cap.MutableRead) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.dirs[k]
	return bd != nil && len(bd.pending)+len(bd.inflight) > 0
}

// flushPending flushes folder k until the links pending for it now are
// made: a change makes at most maxLinksPerChange links (a replayed
// journal, or adds racing MaxPending, can hold more), and this must not
// chase new links added behind them for ever.
func (b *Behind) flushPending(ctx context.Context, k cap.MutableRead) error {
	b.mu.Lock()
	n := 0
	if bd := b.dirs[k]; bd != nil {
		n = len(bd.pending) + len(bd.inflight)
	}
	b.mu.Unlock()
	for range n/maxLinksPerChange + 1 {
		if err := b.flush(ctx, k); err != nil {
			return err
		}
		if !b.has(k) {
			break
		}
	}
	return nil
}

// flush makes folder k's pending links now, or waits for the change that
// is making them; it returns that change's error.
func (b *Behind) flush(ctx context.Context, k cap.MutableRead) error {
	b.mu.Lock()
	bd := b.dirs[k]
	if bd == nil {
		b.mu.Unlock()
		return nil
	}
	ref := bd.ref
	b.mu.Unlock()
	return b.d.editQueued(ctx, ref, nil)
}

// take moves k's pending links in flight, for the change about to run
// under ctx, and checks their folder is where they were written.
func (b *Behind) take(ctx context.Context, k cap.MutableRead) []*plink {
	ls := b.takeLinks(k)
	if len(ls) > 0 {
		b.pathCheck(ctx, k, ls)
	}
	return ls
}

// takeLinks is take without the path check.
func (b *Behind) takeLinks(k cap.MutableRead) []*plink {
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.dirs[k]
	if bd == nil || len(bd.pending) == 0 {
		return nil
	}
	ls := make([]*plink, 0, min(len(bd.pending), maxLinksPerChange))
	for name, l := range bd.pending {
		if len(ls) == maxLinksPerChange {
			break
		}
		ls = append(ls, l)
		delete(bd.pending, name)
		bd.inflight[name] = l
		bd.takenLocked(l)
	}
	return ls
}

// permanentLinkErr reports whether a link failed for good: trying again
// cannot make it. Anything else (servers down or refusing for now, a
// context ended) is tried again; a journaled folder always has its write
// cap, so a refusal that looks like a permission one is a grid's, for now.
func permanentLinkErr(err error) bool {
	for _, e := range []error{ErrIsDir, ErrCorrupt, dirnode.ErrBadName, ErrNameTooLong, dirnode.ErrMetadata, dirnode.ErrNoWriteKey, ErrFolderGone, ErrChangedSince} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// settle takes the result of the change that held ls (err: the change's
// own): links made leave the journal, links that failed for good go to
// the failed links, the others are pending again and retried later.
func (b *Behind) settle(k cap.MutableRead, ls []*plink, err error) {
	var done []uint64
	var failed []*plink
	var again []*plink
	var made []*plink // the entry holds their caps now
	for _, l := range ls {
		lerr := l.err
		if err != nil {
			lerr = err
		}
		if inEntry(err, l.err) {
			made = append(made, l)
		}
		switch {
		case lerr == nil:
			done = append(done, l.id)
		case errors.Is(lerr, errMadeBefore):
			b.log.Info("a replayed link was made before the last stop; not made again", "name", l.rec.Name, "path", l.rec.Path)
			done = append(done, l.id)
		case errors.Is(lerr, errMetaSuperseded):
			b.log.Warn("a replayed metadata change is dropped: another node changed the file's metadata since",
				"name", l.rec.Name, "path", l.rec.Path, "cap", l.rec.Cap, "mtime", l.rec.Mtime)
			done = append(done, l.id)
		case permanentLinkErr(lerr):
			l.err = lerr
			failed = append(failed, l)
		default:
			again = append(again, l)
		}
	}
	b.mu.Lock()
	bd := b.dirs[k]
	ref := bd.ref
	b.mu.Unlock()
	for _, l := range failed {
		if b.carriedOn(bd, l) {
			// A newer link of the name and file waits (its metadata, set
			// while this one was being made): it is made, or listed in the
			// failed links with that metadata, in its stead; not twice.
			b.log.Info("a write-behind link could not be made; its newer record (metadata set since) is made or kept in its stead",
				"path", l.rec.Path, "name", l.rec.Name, "error", l.err)
			done = append(done, l.id)
			continue
		}
		f := FailedLink{Time: time.Now().UTC(), Folder: ref.r.String(), Name: l.rec.Name, Cap: l.rec.Cap,
			Size: l.rec.Size, Error: l.err.Error(), Root: l.rec.Root, Path: l.rec.Path, Acknowledged: l.rec.At}
		if l.rec.Meta {
			f.Mtime, f.Extra = l.rec.Mtime, l.rec.Extra
		}
		if ferr := b.writeFailed(f); ferr != nil {
			// Kept in the journal, so the next start tries it again.
			b.log.Error("a write-behind link could not be made nor kept in the failed links; it stays in the journal",
				"folder", ref.r.String(), "name", l.rec.Name, "cap", l.rec.Cap, "error", l.err, "record_error", ferr)
			continue
		}
		b.log.Error("a write-behind link could not be made; kept in the failed links (docs/operations.md)",
			"folder", ref.r.String(), "path", l.rec.Path, "name", l.rec.Name, "cap", l.rec.Cap, "size", l.rec.Size, "error", l.err,
			"failed_links", filepath.Join(b.cfg.Dir, FailedLinksFile))
		b.st.failedTotal.Add(1)
		done = append(done, l.id)
	}
	b.mu.Lock()
	dead := b.dead
	b.dead = nil
	b.mu.Unlock()
	if len(done)+len(dead) > 0 {
		if jerr := b.j.commit(nil, append(done, dead...)); jerr != nil {
			// Made already: replaying them later links the same caps again.
			b.log.Warn("remove made links from the journal", "error", jerr)
			b.mu.Lock()
			b.dead = append(b.dead, done...)
			b.dead = append(b.dead, dead...)
			b.mu.Unlock()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range ls {
		if bd.inflight[l.rec.Name] == l {
			delete(bd.inflight, l.rec.Name)
		}
	}
	for _, l := range made {
		bd.madeLocked(l)
	}
	for _, l := range again {
		if cur := bd.pending[l.rec.Name]; cur != nil && cur.id > l.id {
			b.dead = append(b.dead, l.id)
			continue
		}
		bd.pending[l.rec.Name] = l
	}
	for _, l := range ls {
		bd.forgetOwnLocked(l.rec.Name)
	}
	if len(again) > 0 {
		bd.retries++
		wait := min(max(b.cfg.Delay, 250*time.Millisecond)<<min(bd.retries-1, 8), maxRetryDelay)
		cause := err
		if cause == nil {
			cause = again[0].err
		}
		b.failingLocked(bd, again, cause, wait)
		// A flush armed meanwhile (a new link's Delay) waits too.
		if bd.timer != nil && bd.timer.Stop() {
			bd.timer = nil
		}
		if bd.timer == nil {
			b.armLocked(k, bd, wait)
		}
		return
	}
	b.recoveredLocked(bd)
	bd.retries = 0
	switch {
	case len(bd.pending) >= b.cfg.FlushAt:
		b.armLocked(k, bd, 0)
	case len(bd.pending) > 0:
		b.armLocked(k, bd, b.cfg.Delay)
	case len(bd.inflight) == 0 && bd.timer == nil && len(bd.busy) == 0:
		delete(b.dirs, k)
	}
}

// carriedOn reports whether a link of l's name and file newer than l
// waits in bd: a record of metadata set while l was in flight (setMeta).
func (b *Behind) carriedOn(bd *behindDir, l *plink) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := bd.pending[l.rec.Name]
	return n != nil && n != l && n.id > l.id && n.rec.Cap == l.rec.Cap
}

// Pending is how many links wait to be made.
func (b *Behind) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, bd := range b.dirs {
		n += len(bd.pending) + len(bd.inflight)
	}
	return n
}

// Flush makes every pending link now; it returns the first error.
func (b *Behind) Flush(ctx context.Context) error {
	b.mu.Lock()
	ks := make([]cap.MutableRead, 0, len(b.dirs))
	for k := range b.dirs {
		ks = append(ks, k)
	}
	b.mu.Unlock()
	var first error
	for _, k := range ks {
		if err := b.flush(ctx, k); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close makes the pending links (waiting up to 10 s for the grid) and
// closes the journal; links it could not make stay there for the next
// start. It may be called more than once.
func (b *Behind) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	for _, bd := range b.dirs {
		if bd.timer != nil {
			bd.timer.Stop()
			bd.timer = nil
		}
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := b.Flush(ctx)
	cancel()
	b.mu.Lock()
	b.closed = true
	for _, bd := range b.dirs {
		if bd.timer != nil {
			bd.timer.Stop()
			bd.timer = nil
		}
	}
	b.mu.Unlock()
	b.stop()
	b.wg.Wait()
	if err != nil {
		b.log.Warn("links not made at stop stay in the journal for the next start", "links", b.Pending(), "error", err)
	}
	if b.j != nil {
		return b.j.close()
	}
	return nil
}

// Store methods: the grid's, except that a folder with pending links is
// made current first.

// Upload is the store's.
func (b *Behind) Upload(ctx context.Context, r io.Reader, size int64, progress func(int64)) (cap.Cap, error) {
	return b.inner.Upload(ctx, r, size, progress)
}

// Open is the store's.
func (b *Behind) Open(ctx context.Context, c cap.Cap) (File, error) { return b.inner.Open(ctx, c) }

// CreateMutable is the store's.
func (b *Behind) CreateMutable(ctx context.Context, initial []byte) (cap.MutableWrite, error) {
	return b.inner.CreateMutable(ctx, initial)
}

// ReadMutable makes the slot's pending links (if it is a folder with
// some), then reads it.
func (b *Behind) ReadMutable(ctx context.Context, c cap.MutableRead) ([]byte, error) {
	if b.has(c) {
		if err := b.flush(ctx, c); err != nil {
			return nil, err
		}
	}
	return b.inner.ReadMutable(ctx, c)
}

// Modify makes the slot's pending links first, then modifies it.
func (b *Behind) Modify(ctx context.Context, c cap.MutableWrite, fn func(old []byte) ([]byte, error)) error {
	if k := c.ReadCap(); b.has(k) {
		if err := b.flush(ctx, k); err != nil {
			return err
		}
	}
	return b.inner.Modify(ctx, c, fn)
}
