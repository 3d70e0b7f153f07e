package hashtree

import (
	"fmt"
	"testing"

	"github.com/tarnfs/tarn/host/tagged"
)

// BenchmarkTree measures the hash trees of a file by its segment count
// (256 segments: a 256 MiB file at 1 MiB segments): building one tree, as
// the encoder does N+2 times at Close; checking a whole serialised tree, as
// a decoder does with TreePrefetch; and verifying every leaf in order
// through a Partial fed only the uncles it asks for, as a decoder of a big
// file does.
//
//	go test -run '^$' -bench Tree -benchmem ./host/hashtree
func BenchmarkTree(b *testing.B) {
	for _, n := range []int{1, 256, 4096} {
		ls := leaves(n)
		t, err := Build(tag, ls)
		if err != nil {
			b.Fatal(err)
		}
		raw := t.Bytes()
		b.Run(fmt.Sprintf("build/leaves=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n) * tagged.Size)
			for b.Loop() {
				if _, err := Build(tag, ls); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("check/leaves=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Check(tag, t.Root(), n, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("verify-all/leaves=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n) * tagged.Size)
			for b.Loop() {
				p, err := NewPartial(tag, t.Root(), n)
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					need := p.Needed(i)
					given := make(map[int]Hash, len(need))
					for _, j := range need {
						given[j] = t.Nodes[j]
					}
					if err := p.Verify(i, ls[i], given); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
