package dirnode

import (
	"container/list"
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tarnfs/tarn/host/tagged"
)

// Chunks stores and fetches immutable bucket chunks. Put returns a
// reference (in tarn, the chunk's immutable read cap) that Get takes back.
// A reference must name exactly the bytes put: chunks are cached by it.
type Chunks interface {
	Put(ctx context.Context, data []byte) (string, error)
	Get(ctx context.Context, ref string) ([]byte, error)
}

// Limits tune how buckets are cut and stored; the zero value means the
// defaults.
type Limits struct {
	// MaxBucket: a bucket whose encoding is larger is split in two
	// (default 64 KiB, about 180 entries with write caps).
	MaxBucket int
	// InlineMax: a bucket this small or smaller stays in the root instead
	// of becoming a chunk (default 16 KiB), so a small directory is one
	// slot and costs one write per change.
	InlineMax int
	// RootInline bounds the inline bytes of all buckets in a root (default
	// 32 KiB); past it the largest inline buckets become chunks, so the
	// root stays small however many buckets it has.
	RootInline int
}

// Default limits.
const (
	DefaultMaxBucket  = 64 << 10
	DefaultInlineMax  = 16 << 10
	DefaultRootInline = 32 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxBucket <= 0 {
		l.MaxBucket = DefaultMaxBucket
	}
	if l.InlineMax <= 0 {
		l.InlineMax = DefaultInlineMax
	}
	if l.RootInline <= 0 {
		l.RootInline = DefaultRootInline
	}
	if l.InlineMax > l.RootInline {
		l.InlineMax = l.RootInline
	}
	return l
}

// Cache keeps decoded chunk buckets by reference. Chunks are immutable, so
// a cached bucket never goes stale: after a change a client fetches only
// the chunks that changed. Safe for concurrent use.
type Cache struct {
	mu      sync.Mutex
	max     int // entries
	entries int
	order   *list.List // of *cached, front = most recent
	byRef   map[string]*list.Element
}

type cached struct {
	ref     string
	es      []Entry
	checked verdict // the place es was last checked against (zero: never)
}

// verdict names what checkBucket proved of a decoded bucket: its entries
// fit the bucket at lo/depth with count entries under the salt's name
// hash. A cached bucket met again at the same place needs no re-hashing of
// its names; met at another place (another root or directory), it is
// checked again.
type verdict struct {
	salt  tagged.Sum
	lo    uint64
	depth uint8
	count int
	ok    bool
}

// NewCache keeps up to maxEntries decoded entries (0: none).
func NewCache(maxEntries int) *Cache {
	return &Cache{max: maxEntries, order: list.New(), byRef: map[string]*list.Element{}}
}

func (c *Cache) get(ref string) ([]Entry, verdict, bool) {
	if c == nil {
		return nil, verdict{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byRef[ref]
	if !ok {
		return nil, verdict{}, false
	}
	c.order.MoveToFront(el)
	v := el.Value.(*cached)
	return v.es, v.checked, true
}

// put keeps es under ref with the verdict it was checked by (zero when
// the entries were built here, not read: the first look-up checks them).
func (c *Cache) put(ref string, es []Entry, v verdict) {
	if c == nil || len(es) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byRef[ref]; ok {
		if v.ok {
			el.Value.(*cached).checked = v
		}
		return
	}
	c.byRef[ref] = c.order.PushFront(&cached{ref: ref, es: es, checked: v})
	c.entries += len(es)
	for c.entries > c.max {
		el := c.order.Back()
		v := el.Value.(*cached)
		c.order.Remove(el)
		delete(c.byRef, v.ref)
		c.entries -= len(v.es)
	}
}

// Dir is a read view of one version of a directory.
type Dir struct {
	root   *Root
	keys   Keys
	chunks Chunks
	cache  *Cache
}

// Open decodes a root. cache may be nil.
func Open(root []byte, keys Keys, chunks Chunks, cache *Cache) (*Dir, error) {
	r, err := DecodeRoot(root)
	if err != nil {
		return nil, err
	}
	return &Dir{root: r, keys: keys, chunks: chunks, cache: cache}, nil
}

// Root is the decoded root.
func (d *Dir) Root() *Root { return d.root }

// Len is the number of entries.
func (d *Dir) Len() int { return d.root.Len() }

// Keys are the directory's keys.
func (d *Dir) Keys() Keys { return d.keys }

// bucket returns bucket i's entries, sorted by name. The slice is shared
// (cached): callers copy before changing it.
func (d *Dir) bucket(ctx context.Context, i int) ([]Entry, error) {
	br := &d.root.buckets[i]
	if br.chunk == "" {
		es, err := DecodeBucket(br.inline)
		if err != nil {
			return nil, fmt.Errorf("inline bucket %d: %w", i, err)
		}
		return es, d.checkBucket(i, es)
	}
	if es, checked, ok := d.cache.get(br.chunk); ok {
		want := d.verdict(i)
		if checked == want {
			return es, nil
		}
		if err := d.checkBucket(i, es); err != nil {
			return nil, err
		}
		d.cache.put(br.chunk, es, want)
		return es, nil
	}
	data, err := d.chunks.Get(ctx, br.chunk)
	if err != nil {
		return nil, fmt.Errorf("read bucket %d chunk: %w", i, err)
	}
	es, err := DecodeBucket(data)
	if err != nil {
		return nil, fmt.Errorf("bucket %d chunk: %w", i, err)
	}
	if err := d.checkBucket(i, es); err != nil {
		return nil, err
	}
	d.cache.put(br.chunk, es, d.verdict(i))
	return es, nil
}

// verdict is what a passed checkBucket(i, ...) proves.
func (d *Dir) verdict(i int) verdict {
	br := &d.root.buckets[i]
	return verdict{salt: d.keys.salt, lo: br.lo, depth: br.depth, count: br.count, ok: true}
}

// bucketChecks counts the full checks of a bucket's names (tests: a
// cached bucket's look-ups do none).
var bucketChecks atomic.Int64

// checkBucket refuses a bucket whose count or names do not match its
// place in the root: a name outside the bucket's hash range could never be
// found, and a wrong count would make Len lie.
func (d *Dir) checkBucket(i int, es []Entry) error {
	br := &d.root.buckets[i]
	if len(es) != br.count {
		return fmt.Errorf("%w: bucket %d holds %d entries, root says %d", ErrFormat, i, len(es), br.count)
	}
	if br.depth == 0 {
		return nil
	}
	bucketChecks.Add(1)
	s := span(br.depth)
	for j := range es {
		if h := d.keys.nameHash(es[j].Name); h-br.lo >= s {
			return fmt.Errorf("%w: bucket %d holds %q outside its hash range", ErrFormat, i, short(es[j].Name))
		}
	}
	return nil
}

// Lookup finds one name (already clean, see CleanName), reading at most
// one chunk.
func (d *Dir) Lookup(ctx context.Context, name string) (Entry, bool, error) {
	i := d.root.find(d.keys.nameHash(name))
	es, err := d.bucket(ctx, i)
	if err != nil {
		return Entry{}, false, err
	}
	j := sort.Search(len(es), func(j int) bool { return es[j].Name >= name })
	if j < len(es) && es[j].Name == name {
		return es[j], true, nil
	}
	return Entry{}, false, nil
}

// listParallel is how many chunks List fetches at once.
const listParallel = 16

// List returns every entry sorted by name, fetching chunks in parallel.
func (d *Dir) List(ctx context.Context) ([]Entry, error) {
	parts := make([][]Entry, len(d.root.buckets))
	errs := make([]error, len(d.root.buckets))
	sem := make(chan struct{}, listParallel)
	var wg sync.WaitGroup
	for i := range d.root.buckets {
		if d.root.buckets[i].chunk == "" {
			parts[i], errs[i] = d.bucket(ctx, i)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			parts[i], errs[i] = d.bucket(ctx, i)
		}()
	}
	wg.Wait()
	out := make([]Entry, 0, d.root.Len())
	for i := range parts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, parts[i]...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}
