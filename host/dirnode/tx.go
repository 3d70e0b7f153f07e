package dirnode

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Tx is an edit of one directory version: reads see the edit's own
// changes; Edit turns it into a new root. Only the buckets of the names it
// touches are read, re-encoded and stored again.
type Tx struct {
	d      *Dir
	ctx    context.Context
	limits Limits
	// changes holds the edit's entries by name (nil: deleted), applied
	// to their buckets at commit, so that a bulk edit costs O(n log n),
	// not a bucket copy per name.
	changes map[string]*Entry
	loaded  map[int][]Entry // buckets read by this edit
	delta   int
}

// Edit applies fn to the directory whose root is old and returns the new
// root. Each changed bucket is re-encoded; buckets that grow past
// MaxBucket are split, ones that empty are merged with their buddy; new
// chunks are stored through chunks. If fn changes nothing, old is returned
// as is. fn's error is returned unchanged. Edit is meant to run inside a
// mutable slot's test-and-set retry loop: it may run again on a newer old.
func Edit(ctx context.Context, old []byte, keys Keys, chunks Chunks, cache *Cache, limits Limits,
	fn func(*Tx) error) ([]byte, error) {
	if !keys.CanWrite() {
		return nil, fmt.Errorf("edit directory: %w", ErrNoWriteKey)
	}
	d, err := Open(old, keys, chunks, cache)
	if err != nil {
		return nil, err
	}
	tx := &Tx{d: d, ctx: ctx, limits: limits.withDefaults(), changes: map[string]*Entry{}, loaded: map[int][]Entry{}}
	if err := fn(tx); err != nil {
		return nil, err
	}
	if len(tx.changes) == 0 {
		return old, nil
	}
	return tx.commit()
}

// Len is the number of entries, including the edit's changes.
func (t *Tx) Len() int { return t.d.Len() + t.delta }

// Keys are the directory's keys (to open child write caps).
func (t *Tx) Keys() Keys { return t.d.keys }

// bucket reads bucket i once per edit.
func (t *Tx) bucket(i int) ([]Entry, error) {
	if es, ok := t.loaded[i]; ok {
		return es, nil
	}
	es, err := t.d.bucket(t.ctx, i)
	if err == nil {
		t.loaded[i] = es
	}
	return es, err
}

// base returns the stored (unchanged) entry of name.
func (t *Tx) base(name string) (int, Entry, bool, error) {
	i := t.d.root.find(t.d.keys.nameHash(name))
	es, err := t.bucket(i)
	if err != nil {
		return i, Entry{}, false, err
	}
	if j, ok := search(es, name); ok {
		return i, es[j], true, nil
	}
	return i, Entry{}, false, nil
}

func search(es []Entry, name string) (int, bool) {
	j := sort.Search(len(es), func(j int) bool { return es[j].Name >= name })
	return j, j < len(es) && es[j].Name == name
}

// Get looks a clean name up.
func (t *Tx) Get(name string) (Entry, bool, error) {
	if e, ok := t.changes[name]; ok {
		if e == nil {
			return Entry{}, false, nil
		}
		return *e, true, nil
	}
	_, e, ok, err := t.base(name)
	return e, ok, err
}

// Set adds or replaces the entry name -> child, sealing writeCap (""
// for children without one, such as immutable files).
func (t *Tx) Set(name, readCap, writeCap string, meta Metadata) error {
	if !validStored(name) {
		return fmt.Errorf("set %q: %w: not clean (use CleanName)", short(name), ErrBadName)
	}
	if !strings.HasPrefix(readCap, "tarn:") || len(readCap) > MaxCapLen {
		return fmt.Errorf("set %q: read cap %q is not a tarn cap of at most %d bytes", short(name), short(readCap), MaxCapLen)
	}
	if err := meta.Check(); err != nil {
		return fmt.Errorf("set %q: %w", short(name), err)
	}
	box, err := t.d.keys.seal(name, writeCap)
	if err != nil {
		return err
	}
	return t.put(Entry{Name: name, ReadCap: readCap, Meta: meta.clone(), box: box})
}

// SetMeta replaces the metadata of an existing entry.
func (t *Tx) SetMeta(name string, meta Metadata) error {
	if err := meta.Check(); err != nil {
		return fmt.Errorf("set metadata of %q: %w", short(name), err)
	}
	e, ok, err := t.Get(name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("set metadata of %q: %w", short(name), errNoEntry)
	}
	e.Meta = meta.clone()
	return t.put(e)
}

// errNoEntry is returned by SetMeta for a missing name; callers check
// with Get first when they need their own sentinel.
var errNoEntry = errors.New("no such entry")

func (t *Tx) put(e Entry) error {
	_, had, err := t.Get(e.Name)
	if err != nil {
		return err
	}
	if !had {
		t.delta++
	}
	t.changes[e.Name] = &e
	return nil
}

// Delete removes name and returns what it was.
func (t *Tx) Delete(name string) (Entry, bool, error) {
	e, had, err := t.Get(name)
	if err != nil || !had {
		return Entry{}, false, err
	}
	t.changes[name] = nil
	t.delta--
	return e, true, nil
}

// apply merges the edit's changes for bucket i into its stored entries.
func (t *Tx) apply(i int, names []string) ([]Entry, error) {
	base, err := t.bucket(i)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(base)+len(names))
	j := 0
	for _, n := range names {
		for j < len(base) && base[j].Name < n {
			out = append(out, base[j])
			j++
		}
		if j < len(base) && base[j].Name == n {
			j++ // replaced or deleted
		}
		if e := t.changes[n]; e != nil {
			out = append(out, *e)
		}
	}
	return append(out, base[j:]...), nil
}

// piece is a bucket of the new root and whether this edit made it.
type piece struct {
	bucketRef
	fresh bool
	es    []Entry // decoded entries of a fresh bucket
}

// commit builds the new root: unchanged buckets are copied by reference,
// changed ones re-encoded, split, merged and stored.
func (t *Tx) commit() ([]byte, error) {
	byBucket := map[int][]string{}
	for n := range t.changes {
		i := t.d.root.find(t.d.keys.nameHash(n))
		byBucket[i] = append(byBucket[i], n)
	}
	var ps []piece
	for i, br := range t.d.root.buckets {
		names, ok := byBucket[i]
		if !ok {
			ps = append(ps, piece{bucketRef: br})
			continue
		}
		sort.Strings(names)
		es, err := t.apply(i, names)
		if err != nil {
			return nil, err
		}
		ps = append(ps, t.split(es, br.depth, br.lo)...)
	}
	ps = t.merge(ps)
	// Inline or chunk: fresh buckets above InlineMax become chunks; then
	// while the root's inline bytes exceed RootInline, the largest inline
	// bucket does.
	put := map[int]bool{}
	inline := 0
	for i := range ps {
		if ps[i].chunk == "" {
			if ps[i].fresh && len(ps[i].inline) > t.limits.InlineMax {
				put[i] = true
			} else {
				inline += len(ps[i].inline)
			}
		}
	}
	for inline > t.limits.RootInline {
		big := -1
		for i := range ps {
			if ps[i].chunk == "" && !put[i] && (big < 0 || len(ps[i].inline) > len(ps[big].inline)) {
				big = i
			}
		}
		put[big] = true
		inline -= len(ps[big].inline)
	}
	if err := t.store(ps, put); err != nil {
		return nil, err
	}
	r := &Root{buckets: make([]bucketRef, len(ps))}
	for i := range ps {
		r.buckets[i] = ps[i].bucketRef
	}
	return r.Encode(), nil
}

// split cuts an oversized bucket by the next bit of the name hash until
// every piece fits MaxBucket (or maxDepth is reached).
func (t *Tx) split(es []Entry, depth uint8, lo uint64) []piece {
	enc := encodeBucket(es)
	if len(enc) <= t.limits.MaxBucket || depth >= maxDepth {
		return []piece{{bucketRef: bucketRef{depth: depth, lo: lo, count: len(es), inline: enc}, fresh: true, es: es}}
	}
	nd := depth + 1
	half := span(nd)
	var left, right []Entry
	for _, e := range es {
		if t.d.keys.nameHash(e.Name)-lo < half {
			left = append(left, e)
		} else {
			right = append(right, e)
		}
	}
	return append(t.split(left, nd, lo), t.split(right, nd, lo+half)...)
}

// merge joins a changed bucket with its buddy (the other half of the
// range one level up) when either is empty, or both are inline and small
// together; repeated until nothing merges. Buddies in chunks are not read
// just to merge.
func (t *Tx) merge(ps []piece) []piece {
	for changed := true; changed; {
		changed = false
		for i := 0; i+1 < len(ps); i++ {
			a, b := &ps[i], &ps[i+1]
			if a.depth == 0 || a.depth != b.depth || !(a.fresh || b.fresh) ||
				(a.depth > 1 && a.lo%span(a.depth-1) != 0) || (a.depth == 1 && a.lo != 0) {
				continue
			}
			var m piece
			switch {
			case b.count == 0:
				m = *a
			case a.count == 0:
				m = *b
				m.lo = a.lo
			case a.chunk == "" && b.chunk == "" && len(a.inline)+len(b.inline) <= t.limits.MaxBucket/4:
				ea, err1 := DecodeBucket(a.inline)
				eb, err2 := DecodeBucket(b.inline)
				if err1 != nil || err2 != nil {
					continue // left as is; a read reports the damage
				}
				all := append(append([]Entry(nil), ea...), eb...)
				sort.Slice(all, func(x, y int) bool { return all[x].Name < all[y].Name })
				m = piece{bucketRef: bucketRef{lo: a.lo, count: len(all), inline: encodeBucket(all)}, es: all}
			default:
				continue
			}
			m.depth = a.depth - 1
			m.fresh = true
			ps = append(ps[:i], append([]piece{m}, ps[i+2:]...)...)
			changed = true
		}
	}
	return ps
}

// storeParallel bounds concurrent chunk uploads of one edit.
const storeParallel = 8

// store puts the chunks marked in put and replaces their inline bytes by
// references.
func (t *Tx) store(ps []piece, put map[int]bool) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, storeParallel)
	)
	for i := range put {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ref, err := t.d.chunks.Put(t.ctx, ps[i].inline)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("store bucket chunk: %w", err)
				}
				return
			}
			if ps[i].es != nil {
				t.d.cache.put(ref, ps[i].es, verdict{})
			}
			ps[i].chunk, ps[i].inline = ref, nil
		}()
	}
	wg.Wait()
	return first
}
