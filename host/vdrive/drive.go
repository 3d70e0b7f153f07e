package vdrive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/dirnode"
)

// Type is what an entry is (file, dir).
type Type = dirnode.Type

// Entry types.
const (
	TypeUnknown = dirnode.TypeUnknown
	TypeFile    = dirnode.TypeFile
	TypeDir     = dirnode.TypeDir
)

// Metadata is an entry's metadata: type, size, times and free-form keys.
type Metadata = dirnode.Metadata

// ModeKey is the Extra key holding a Unix permission mode in octal
// ("0644"); Info.Mode reads it.
const ModeKey = "unix:mode"

// DefaultCacheEntries is how many decoded directory entries a Drive keeps
// (chunks are immutable, so the cache never goes stale).
const DefaultCacheEntries = 100_000

// Drive is the tree under one root directory cap. It is safe for
// concurrent use; it holds no state but caches, so many Drives (or
// processes) may share a root.
type Drive struct {
	store  Store
	chunks chunks
	root   dirRef
	cache  *dirnode.Cache
	limits dirnode.Limits
	now    func() time.Time
	roots  rootCache
	queues *dirQueues
	reads  *slotReads
	// writing counts the files being written into each directory.
	writing *writingDirs
	// behind is the node's write-behind when the drive was opened over
	// one (behind.go); deferLinks: WithWriteBehind.
	behind     *Behind
	deferLinks bool
	// derived holds read caps derived from write caps (readCapOf).
	derived struct {
		mu sync.Mutex
		m  map[cap.DirWrite]cap.DirRead
	}
}

// Option adjusts a Drive.
type Option func(*Drive)

// WithCache sets how many decoded entries are cached (0: none).
func WithCache(entries int) Option {
	return func(d *Drive) { d.cache = dirnode.NewCache(entries) }
}

// WithLimits sets the directory bucket limits new versions are written
// with (tests use small ones to exercise splitting).
func WithLimits(l dirnode.Limits) Option { return func(d *Drive) { d.limits = l } }

// WithDirCache keeps each directory root read for ttl and reuses it for
// path lookups and listings (0, the default: read every time). A drive
// sees its own changes at once; another client's changes may take up to
// ttl to show. Changes are never lost by it: they always apply to the
// slot's current version. Frontends whose clients stat many paths in a
// row (WebDAV PROPFIND) use a second or so.
func WithDirCache(ttl time.Duration) Option { return func(d *Drive) { d.roots.ttl = ttl } }

// WithWriteBehind makes the drive answer a new file's Close or PutLinked
// once its link is in the write-behind journal, and link it later (see
// behind.go), when the drive is opened over a *Behind with a delay;
// otherwise it links before answering, as without the option. For
// frontends whose clients upload many files at once.
func WithWriteBehind() Option { return func(d *Drive) { d.deferLinks = true } }

// WithClock sets the clock of ctime and mtime.
func WithClock(now func() time.Time) Option { return func(d *Drive) { d.now = now } }

// dirRef is a directory as far as this drive may use it: always its read
// cap, and its write cap when writable.
type dirRef struct {
	r cap.DirRead
	w *cap.DirWrite
}

func (r dirRef) keys() dirnode.Keys {
	if r.w == nil {
		return dirnode.NewKeys(r.r.Slot.ReadKey[:], nil)
	}
	wk := r.w.Slot.WriteKey()
	return dirnode.NewKeys(r.r.Slot.ReadKey[:], wk[:])
}

// New opens the tree under rootCap: a directory write cap (tarn:dir:) for
// a writable drive, or a read cap (tarn:dir-ro:) for a read-only one, on
// which every change fails with ErrReadOnly. It reads nothing yet.
func New(store Store, rootCap string, opts ...Option) (*Drive, error) {
	if store == nil {
		return nil, errors.New("vdrive: no store")
	}
	c, err := cap.Parse(rootCap)
	if err != nil {
		return nil, fmt.Errorf("vdrive root cap: %w", err)
	}
	d := &Drive{store: store, chunks: chunks{store}, cache: dirnode.NewCache(DefaultCacheEntries), now: time.Now,
		queues: &dirQueues{}, reads: &slotReads{}, writing: &writingDirs{}, roots: rootCache{m: &rootMap{}}}
	if b, ok := store.(*Behind); ok {
		// The drive reaches the grid directly and shares the write-behind's
		// state with the node's other drives.
		d.store, d.chunks = b.inner, chunks{b.inner}
		b.attach(d)
	}
	switch v := c.(type) {
	case cap.DirWrite:
		d.root = dirRef{r: v.ReadCap(), w: &v}
	case cap.DirRead:
		d.root = dirRef{r: v}
	default:
		return nil, fmt.Errorf("vdrive root cap is a %s cap, want a directory cap (tarn:dir: or tarn:dir-ro:): %w", c.Kind(), ErrInvalid)
	}
	for _, o := range opts {
		o(d)
	}
	return d, nil
}

// NewRoot creates an empty directory to serve as a root and returns its
// write cap.
func NewRoot(ctx context.Context, store Store) (cap.DirWrite, error) {
	w, err := store.CreateMutable(ctx, dirnode.EmptyRoot())
	if err != nil {
		return cap.DirWrite{}, fmt.Errorf("create root directory: %w", err)
	}
	return cap.DirWrite{Slot: w}, nil
}

// ReadOnly reports whether the drive's root is a read cap.
func (d *Drive) ReadOnly() bool { return d.root.w == nil }

// RootCap is the root's cap: the write cap of a writable drive, else the
// read cap.
func (d *Drive) RootCap() string {
	if d.root.w != nil {
		return d.root.w.String()
	}
	return d.root.r.String()
}

// load reads the current version of a directory (or a cached one, see
// WithDirCache).
func (d *Drive) load(ctx context.Context, ref dirRef) (*dirnode.Dir, error) {
	dir, _, err := d.loadCached(ctx, ref, true)
	return dir, err
}

// loadFresh reads the current version, never a cached one.
func (d *Drive) loadFresh(ctx context.Context, ref dirRef) (*dirnode.Dir, error) {
	dir, _, err := d.loadCached(ctx, ref, false)
	return dir, err
}

func (d *Drive) loadCached(ctx context.Context, ref dirRef, useCache bool) (*dirnode.Dir, bool, error) {
	b, cached := []byte(nil), false
	if useCache {
		b, cached = d.roots.get(ref.r.Slot)
	}
	if !cached {
		var err error
		var started time.Time
		if b, started, err = d.readRoot(ctx, ref.r.Slot); err != nil {
			return nil, false, fmt.Errorf("read directory %s: %w", shortCap(ref.r.String()), err)
		}
		d.roots.putRead(ref.r.Slot, b, started)
	}
	dir, err := dirnode.Open(b, ref.keys(), d.chunks, d.cache)
	if err != nil {
		return nil, false, fmt.Errorf("directory %s: %w", shortCap(ref.r.String()), err)
	}
	return dir, cached, nil
}

// lookup finds name in a directory. An answer from a cached root that
// would make the caller fail (a miss; a hit too when recheckFound) is
// checked again on the current version, so the cache only ever delays
// seeing removals.
func (d *Drive) lookup(ctx context.Context, ref dirRef, name string, recheckFound bool) (*dirnode.Dir, dirnode.Entry, bool, error) {
	dir, cached, err := d.loadCached(ctx, ref, true)
	if err != nil {
		return nil, dirnode.Entry{}, false, err
	}
	e, ok, err := dir.Lookup(ctx, name)
	if err != nil || !cached || (ok && !recheckFound) {
		return dir, e, ok, err
	}
	if dir, err = d.loadFresh(ctx, ref); err != nil {
		return nil, dirnode.Entry{}, false, err
	}
	e, ok, err = dir.Lookup(ctx, name)
	return dir, e, ok, err
}

func shortCap(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

// child is the directory an entry of parent names (ErrNotDir for other
// children). It is writable when parent is and the entry holds a write
// cap.
func (d *Drive) child(parent dirRef, keys dirnode.Keys, e dirnode.Entry) (dirRef, error) {
	if e.Meta.Type != TypeDir {
		return dirRef{}, ErrNotDir
	}
	c, err := cap.Parse(e.ReadCap)
	if err != nil {
		return dirRef{}, fmt.Errorf("entry %q: %w", e.Name, err)
	}
	rc, ok := c.(cap.DirRead)
	if !ok {
		return dirRef{}, fmt.Errorf("entry %q holds a %s cap: %w", e.Name, c.Kind(), ErrNotDir)
	}
	ref := dirRef{r: rc}
	if parent.w != nil && e.HasWriteCap() {
		s, err := keys.WriteCap(e)
		if err != nil {
			return dirRef{}, err
		}
		c, err := cap.Parse(s)
		if err != nil {
			return dirRef{}, fmt.Errorf("entry %q write cap: %w", e.Name, err)
		}
		wc, ok := c.(cap.DirWrite)
		if !ok || d.readCapOf(wc) != rc {
			return dirRef{}, fmt.Errorf("entry %q: write cap does not match its read cap: %w", e.Name, dirnode.ErrFormat)
		}
		ref.w = &wc
	}
	return ref, nil
}

// readCapOf is w's read cap. Deriving it takes a signing key's public
// half (an elliptic-curve multiplication), and every path walked through
// a writable folder checks its entry's write cap against it, so derived
// caps are kept (a write cap's read cap never changes).
func (d *Drive) readCapOf(w cap.DirWrite) cap.DirRead {
	d.derived.mu.Lock()
	r, ok := d.derived.m[w]
	d.derived.mu.Unlock()
	if ok {
		return r
	}
	r = w.ReadCap()
	d.derived.mu.Lock()
	if d.derived.m == nil || len(d.derived.m) >= maxCachedRoots {
		d.derived.m = map[cap.DirWrite]cap.DirRead{}
	}
	d.derived.m[w] = r
	d.derived.mu.Unlock()
	return r
}

// walk resolves parts, each a directory, from the root.
func (d *Drive) walk(ctx context.Context, parts []string) (dirRef, error) {
	ref := d.root
	for i, name := range parts {
		dir, e, ok, err := d.lookup(ctx, ref, name, false)
		if err != nil {
			return dirRef{}, err
		}
		if !ok {
			if _, ok := d.pendingLink(ref, name); ok {
				return dirRef{}, fmt.Errorf("%s: %w", shown(JoinPath(parts[:i+1])), ErrNotDir)
			}
			return dirRef{}, fmt.Errorf("%s: %w", shown(JoinPath(parts[:i+1])), ErrNotExist)
		}
		if ref, err = d.child(ref, dir.Keys(), e); err != nil {
			return dirRef{}, fmt.Errorf("%s: %w", shown(JoinPath(parts[:i+1])), err)
		}
	}
	return ref, nil
}

// edit changes a directory through its slot's test-and-set Modify; fn may
// run more than once (on each newer version).
func (d *Drive) edit(ctx context.Context, ref dirRef, fn func(*dirnode.Tx) error) error {
	if ref.w == nil {
		return ErrReadOnly
	}
	keys := ref.keys()
	var last []byte
	err := d.store.Modify(ctx, ref.w.Slot, func(old []byte) ([]byte, error) {
		b, err := dirnode.Edit(ctx, old, keys, d.chunks, d.cache, d.limits, fn)
		last = b
		return b, err
	})
	if err != nil {
		d.roots.drop(ref.r.Slot)
		return err
	}
	d.roots.put(ref.r.Slot, last)
	return nil
}

// rootCache keeps recently read directory roots (WithDirCache). Drives
// of one write-behind share the roots (shared), each reading them with
// its own ttl; the roots a shared drive writes are kept whatever its ttl.
type rootCache struct {
	ttl    time.Duration
	shared bool
	m      *rootMap
}

// rootMap is the roots kept.
type rootMap struct {
	mu sync.Mutex
	m  map[cap.MutableRead]cachedRoot
}

type cachedRoot struct {
	b  []byte
	at time.Time
}

// maxCachedRoots bounds the cache; past it, it starts afresh.
const maxCachedRoots = 10_000

func (c *rootCache) keeps() bool { return c.ttl > 0 || c.shared }

func (c *rootCache) get(k cap.MutableRead) ([]byte, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	e, ok := c.m.m[k]
	if !ok || time.Since(e.at) > c.ttl {
		return nil, false
	}
	return e.b, true
}

func (c *rootCache) put(k cap.MutableRead, b []byte) {
	if !c.keeps() {
		return
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if c.m.m == nil || len(c.m.m) >= maxCachedRoots {
		c.m.m = map[cap.MutableRead]cachedRoot{}
	}
	c.m.m[k] = cachedRoot{b: b, at: time.Now()}
}

// putRead keeps b, read from the slot by a read that began at started,
// unless the cache holds a root put since then (a change this drive made
// while the read was under way, or a later read): a read may return the
// version from before a change that completed before it did, and must
// not hide the drive's own change.
func (c *rootCache) putRead(k cap.MutableRead, b []byte, started time.Time) {
	if !c.keeps() {
		return
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if e, ok := c.m.m[k]; ok && e.at.After(started) {
		return
	}
	if c.m.m == nil || len(c.m.m) >= maxCachedRoots {
		c.m.m = map[cap.MutableRead]cachedRoot{}
	}
	c.m.m[k] = cachedRoot{b: b, at: started}
}

func (c *rootCache) drop(k cap.MutableRead) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	delete(c.m.m, k)
}

// Info describes an entry; it is an fs.FileInfo.
type Info struct {
	name  string
	e     dirnode.Entry
	keys  dirnode.Keys
	write bool // the parent is writable, so WriteCap may open
	ro    bool // nothing here can change: a read-only drive, parent or directory
}

var _ fs.FileInfo = (*Info)(nil)

// Name is the entry's name ("/" for the root).
func (i *Info) Name() string { return i.name }

// Size is the file size in bytes (for a directory, what its entry says).
func (i *Info) Size() int64 { return i.e.Meta.Size }

// IsDir reports whether the entry is a directory.
func (i *Info) IsDir() bool { return i.e.Meta.Type == TypeDir }

// Type is the entry's type.
func (i *Info) Type() Type { return i.e.Meta.Type }

// ModTime is the entry's mtime (zero when unset).
func (i *Info) ModTime() time.Time { return i.e.Meta.Mtime }

// Mode is ModeKey's permission bits (else 0644, 0755 for directories),
// without write bits where nothing can change: on a read-only drive, in a
// read-only directory, for a directory linked by its read cap.
func (i *Info) Mode() fs.FileMode {
	m := fs.FileMode(0o644)
	if i.IsDir() {
		m = 0o755
	}
	if s, ok := i.e.Meta.Extra[ModeKey]; ok {
		if v, err := strconv.ParseUint(s, 8, 32); err == nil {
			m = fs.FileMode(v) & fs.ModePerm
		}
	}
	if i.ro {
		m &^= 0o222
	}
	if i.IsDir() {
		m |= fs.ModeDir
	}
	return m
}

// Sys returns the *Info itself.
func (i *Info) Sys() any { return i }

// Metadata is a copy of the entry's metadata.
func (i *Info) Metadata() Metadata { return cloneMeta(i.e.Meta) }

// ReadCap is the child's read cap ("" for the root).
func (i *Info) ReadCap() string { return i.e.ReadCap }

// WriteCap is the child's write cap, "" when there is none or the drive
// may not see it (a read-only parent).
func (i *Info) WriteCap() string {
	if !i.write || !i.e.HasWriteCap() {
		return ""
	}
	s, err := i.keys.WriteCap(i.e)
	if err != nil {
		return ""
	}
	return s
}

func cloneMeta(m Metadata) Metadata {
	if m.Extra != nil {
		x := make(map[string]string, len(m.Extra))
		for k, v := range m.Extra {
			x[k] = v
		}
		m.Extra = x
	}
	return m
}

func (d *Drive) info(parent dirRef, keys dirnode.Keys, e dirnode.Entry) *Info {
	ro := parent.w == nil || (e.Meta.Type == TypeDir && !e.HasWriteCap())
	return &Info{name: e.Name, e: e, keys: keys, write: parent.w != nil, ro: ro}
}

// pendingLink is the write-behind link of name in the directory ref, if
// one waits to be made (behind.go).
func (d *Drive) pendingLink(ref dirRef, name string) (*plink, bool) {
	if d.behind == nil {
		return nil, false
	}
	return d.behind.lookup(ref.r.Slot, name)
}

// flushDir makes the write-behind links waiting for the directory ref,
// for an operation that needs its real state.
func (d *Drive) flushDir(ctx context.Context, ref dirRef) error {
	b := d.behind
	if b == nil || !b.has(ref.r.Slot) {
		return nil
	}
	return b.flushPending(ctx, ref.r.Slot)
}
