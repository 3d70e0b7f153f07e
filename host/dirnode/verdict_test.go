package dirnode

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// chunkedDir builds a directory of n names whose buckets are all chunks.
func chunkedDir(t *testing.T, n int) (root []byte, k Keys, c *memChunks) {
	t.Helper()
	ctx := context.Background()
	k = NewKeys([]byte(testRead), []byte(testWrite))
	c = newMemChunks()
	lim := Limits{MaxBucket: 600, InlineMax: 1, RootInline: 400}
	root, err := Edit(ctx, EmptyRoot(), k, c, nil, lim, func(tx *Tx) error {
		for i := range n {
			if err := tx.Set(fmt.Sprintf("n%03d", i), fmt.Sprintf("tarn:lit:%d", i), "", Metadata{Size: int64(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, k, c
}

// TestCachedBucketCheckedOnce: a chunk's names are hashed once, when it
// is read from the store; look-ups of the cached bucket at the same place
// do no hashing, and still find every name.
func TestCachedBucketCheckedOnce(t *testing.T) {
	ctx := context.Background()
	root, k, c := chunkedDir(t, 60)
	cache := NewCache(1000)
	d, err := Open(root, k, c, cache)
	if err != nil {
		t.Fatal(err)
	}
	if d.Root().Buckets() < 3 {
		t.Fatalf("%d buckets, want several", d.Root().Buckets())
	}
	before := bucketChecks.Load()
	if _, err := d.List(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bucketChecks.Load() - before; got != int64(d.Root().Buckets()) {
		t.Fatalf("first List checked %d buckets, want %d", got, d.Root().Buckets())
	}
	// A new view of the same root (as after a folder re-read) shares the
	// cache and its verdicts.
	d2, err := Open(root, k, c, cache)
	if err != nil {
		t.Fatal(err)
	}
	gets := c.gets
	before = bucketChecks.Load()
	for round := range 3 {
		for i := range 60 {
			e, ok, err := d2.Lookup(ctx, fmt.Sprintf("n%03d", i))
			if err != nil || !ok || e.ReadCap != fmt.Sprintf("tarn:lit:%d", i) {
				t.Fatalf("round %d: Lookup n%03d = %v %v %v", round, i, e.ReadCap, ok, err)
			}
		}
	}
	if got := bucketChecks.Load() - before; got != 0 {
		t.Fatalf("cached look-ups checked %d buckets, want 0", got)
	}
	if c.gets != gets {
		t.Fatalf("cached look-ups read %d chunks", c.gets-gets)
	}
}

// TestCorruptBucketRefused: a bucket holding a name outside its hash range
// is refused whether read from the store, found in the cache unchecked,
// or found in the cache checked for another directory's keys.
func TestCorruptBucketRefused(t *testing.T) {
	ctx := context.Background()
	root, k, c := chunkedDir(t, 60)
	r, err := DecodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	// Bucket 0's entries with its first name swapped for a name of the
	// last bucket: same count, one name out of range.
	d, err := Open(root, k, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := d.bucket(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	last, err := d.bucket(ctx, len(r.buckets)-1)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]Entry(nil), first...)
	bad[0] = last[0]
	ref := r.buckets[0].chunk
	victim := first[1].Name
	other := NewKeys([]byte("tarn:dir-read:other"), nil)

	for _, tc := range []struct {
		name  string
		setup func(c *memChunks, cache *Cache)
	}{
		{name: "from the store", setup: func(c *memChunks, _ *Cache) {
			c.m[ref] = encodeBucket(bad)
		}},
		{name: "cached unchecked", setup: func(_ *memChunks, cache *Cache) {
			cache.put(ref, bad, verdict{})
		}},
		{name: "cached checked for other keys", setup: func(_ *memChunks, cache *Cache) {
			v := d.verdict(0)
			v.salt = other.salt
			cache.put(ref, bad, v)
		}},
		{name: "cached checked at another place", setup: func(_ *memChunks, cache *Cache) {
			v := d.verdict(0)
			v.lo++
			cache.put(ref, bad, v)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, c := chunkedDir(t, 60)
			cache := NewCache(1000)
			tc.setup(c, cache)
			d, err := Open(root, k, c, cache)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				if _, _, err := d.Lookup(ctx, victim); !errors.Is(err, ErrFormat) {
					t.Fatalf("round %d: Lookup = %v, want ErrFormat", round, err)
				}
			}
			if _, err := d.List(ctx); !errors.Is(err, ErrFormat) {
				t.Fatalf("List = %v, want ErrFormat", err)
			}
		})
	}
}

// BenchmarkLookupCached: look-ups in a directory whose buckets are all
// cached (the folder cache of a busy frontend).
func BenchmarkLookupCached(b *testing.B) {
	ctx := context.Background()
	t := &testing.T{}
	root, k, c := chunkedDir(t, 500)
	cache := NewCache(10000)
	d, err := Open(root, k, c, cache)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.List(ctx); err != nil {
		b.Fatal(err)
	}
	names := make([]string, 500)
	for i := range names {
		names[i] = fmt.Sprintf("n%03d", i)
	}
	for _, bc := range []struct {
		name    string
		recheck bool // what every look-up did before verdicts were kept
	}{{name: "verdict"}, {name: "recheck", recheck: true}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				name := names[i%len(names)]
				if _, ok, err := d.Lookup(ctx, name); err != nil || !ok {
					b.Fatal(ok, err)
				}
				if bc.recheck {
					j := d.root.find(k.nameHash(name))
					es, _, _ := cache.get(d.root.buckets[j].chunk)
					if err := d.checkBucket(j, es); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
