package dirnode

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// applyOps runs a byte-coded sequence of edits against both the format
// and a map, committing every few operations, and checks after each
// commit that the directory lists exactly the map and that its buckets
// keep the limits.
func applyOps(t *testing.T, ops []byte) {
	ctx := context.Background()
	k := NewKeys([]byte(testRead), []byte(testWrite))
	c := newMemChunks()
	lim := Limits{MaxBucket: 600, InlineMax: 200, RootInline: 400}
	model := map[string]string{}
	root := EmptyRoot()
	for len(ops) >= 2 {
		batch := int(ops[0]%8) + 1
		var err error
		root, err = Edit(ctx, root, k, c, nil, lim, func(tx *Tx) error {
			for i := 0; i < batch && len(ops) >= 2; i++ {
				op, arg := ops[0], ops[1]
				ops = ops[2:]
				name := fmt.Sprintf("n%03d", arg)
				if op&1 == 0 {
					rc := fmt.Sprintf("tarn:lit:%d", op)
					if err := tx.Set(name, rc, "", Metadata{Size: int64(op)}); err != nil {
						return err
					}
					model[name] = rc
				} else if _, had, err := tx.Delete(name); err != nil {
					return err
				} else if _, ok := model[name]; had != ok {
					return fmt.Errorf("delete %s: had %v, model %v", name, had, ok)
				} else {
					delete(model, name)
				}
				if tx.Len() != len(model) {
					return fmt.Errorf("tx.Len %d, model %d", tx.Len(), len(model))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(root, k, c, nil)
		if err != nil {
			t.Fatalf("new root does not decode: %v", err)
		}
		es, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != len(model) || d.Len() != len(model) {
			t.Fatalf("lists %d (Len %d), model %d", len(es), d.Len(), len(model))
		}
		want := make([]string, 0, len(model))
		for n := range model {
			want = append(want, n)
		}
		sort.Strings(want)
		for i, e := range es {
			if e.Name != want[i] || e.ReadCap != model[e.Name] {
				t.Fatalf("entry %d: %s %s, want %s %s", i, e.Name, e.ReadCap, want[i], model[want[i]])
			}
		}
		for i := range d.root.buckets {
			bes, err := d.bucket(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(encodeBucket(bes)); n > lim.MaxBucket && d.root.buckets[i].depth < maxDepth {
				t.Fatalf("bucket %d is %d bytes, over %d", i, n, lim.MaxBucket)
			}
		}
		if len(ops) < 2 && len(model) == 0 && d.root.Buckets() != 1 {
			t.Fatalf("empty directory in %d buckets", d.root.Buckets())
		}
	}
}

func TestEditModel(t *testing.T) {
	seeds := uint64(20)
	if testing.Short() || raceEnabled {
		seeds = 4
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			ops := make([]byte, 2000)
			for i := range ops {
				ops[i] = byte(r.Uint32())
			}
			// Bias toward growth first, then shrinking, so splits and
			// merges both happen.
			for i := 0; i < len(ops)/2; i += 2 {
				ops[i] &^= 1
			}
			for i := len(ops) / 2; i < len(ops); i += 2 {
				ops[i] |= 1
			}
			// Then delete every name: the directory must fold back to
			// the one empty inline bucket.
			for i := 0; i < 256; i++ {
				ops = append(ops, 1, byte(i))
			}
			applyOps(t, ops)
		})
	}
}

func FuzzEdit(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 1, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4000 {
			return
		}
		applyOps(t, ops)
	})
}
