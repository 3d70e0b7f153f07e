package dirnode

import (
	"bytes"
	"context"
	"testing"
)

func FuzzDecodeBucket(f *testing.F) {
	k := NewKeys([]byte(testRead), []byte(testWrite))
	box, _ := k.seal("a", "tarn:dir:w")
	f.Add(encodeBucket(nil))
	f.Add(encodeBucket([]Entry{{Name: "a", ReadCap: "tarn:lit:", box: box, Meta: Metadata{Type: TypeDir, Extra: map[string]string{"k": "v"}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeBucket(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes: one spelling per bucket.
		if again := encodeBucket(es); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
		for _, e := range es {
			k.WriteCap(e) // must not panic on any box
		}
	})
}

func FuzzDecodeRoot(f *testing.F) {
	f.Add(EmptyRoot())
	k := NewKeys([]byte(testRead), []byte(testWrite))
	c := newMemChunks()
	root, _ := Edit(context.Background(), EmptyRoot(), k, c, nil, Limits{MaxBucket: 512, InlineMax: 256, RootInline: 512}, func(tx *Tx) error {
		for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"} {
			tx.Set(n, "tarn:dir-read:"+n, "tarn:dir:"+n, Metadata{})
		}
		return nil
	})
	f.Add(root)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRoot(b)
		if err != nil {
			return
		}
		if again := r.Encode(); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
		d := &Dir{root: r, keys: k, chunks: c}
		d.List(context.Background()) // errors are fine, panics are not
		d.Lookup(context.Background(), "a")
	})
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a", "..", "e\u0301", "a/b", "\x00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := CleanName(s)
		if err != nil {
			return
		}
		if again, err := CleanName(n); err != nil || again != n {
			t.Fatalf("CleanName not idempotent on %q: %q, %v", n, again, err)
		}
	})
}
