package hashtree

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tarnfs/tarn/host/tagged"
)

const tag = "tarn 2026 test tree node v1"

func leaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		out[i] = tagged.Hash("tarn 2026 test leaf v1", []byte(fmt.Sprint(i)))
	}
	return out
}

func TestShape(t *testing.T) {
	for _, tc := range []struct{ n, slots, depth int }{{1, 1, 0}, {2, 2, 1}, {3, 4, 2}, {4, 4, 2}, {5, 8, 3}, {1000, 1024, 10}} {
		if LeafSlots(tc.n) != tc.slots || Depth(tc.n) != tc.depth || NodeCount(tc.n) != 2*tc.slots-1 {
			t.Errorf("n=%d: slots %d depth %d, want %d %d", tc.n, LeafSlots(tc.n), Depth(tc.n), tc.slots, tc.depth)
		}
	}
}

func TestProofs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 13, 64, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ls := leaves(n)
			tr, err := Build(tag, ls)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Check(tag, tr.Root(), n, tr.Bytes())
			if err != nil || len(got) != n || got[n-1] != ls[n-1] {
				t.Fatalf("check: %v", err)
			}
			for i := 0; i < n; i++ {
				pr, err := tr.Proof(i)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyProof(tag, tr.Root(), n, i, ls[i], pr); err != nil {
					t.Fatalf("leaf %d: %v", i, err)
				}
				// wrong leaf, wrong uncle, wrong tag, wrong position all fail
				if err := VerifyProof(tag, tr.Root(), n, i, ls[(i+1)%n], pr); n > 1 && !errors.Is(err, ErrMismatch) {
					t.Fatalf("leaf %d with other leaf hash: %v", i, err)
				}
				if len(pr) > 0 {
					bad := append([]Hash(nil), pr...)
					bad[len(bad)-1][0] ^= 1
					if err := VerifyProof(tag, tr.Root(), n, i, ls[i], bad); !errors.Is(err, ErrMismatch) {
						t.Fatalf("leaf %d with bad uncle: %v", i, err)
					}
					if err := VerifyProof("tarn 2026 other v1", tr.Root(), n, i, ls[i], pr); !errors.Is(err, ErrMismatch) {
						t.Fatalf("leaf %d with other tag: %v", i, err)
					}
					if err := VerifyProof(tag, tr.Root(), n, i, ls[i], pr[1:]); err == nil {
						t.Fatalf("leaf %d short proof accepted", i)
					}
				}
			}
		})
	}
}

func TestPartialIncremental(t *testing.T) {
	n := 37
	ls := leaves(n)
	tr, _ := Build(tag, ls)
	p, err := NewPartial(tag, tr.Root(), n)
	if err != nil {
		t.Fatal(err)
	}
	fetched := 0
	for i := 0; i < n; i++ {
		need := p.Needed(i)
		given := map[int]Hash{}
		for _, j := range need {
			given[j] = tr.Nodes[j]
		}
		fetched += len(need)
		// a corrupted leaf fails and teaches nothing
		bad := ls[i]
		bad[3] ^= 0x10
		if err := p.Verify(i, bad, given); !errors.Is(err, ErrMismatch) {
			t.Fatalf("leaf %d corrupted: %v", i, err)
		}
		if err := p.Verify(i, ls[i], given); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	// sequential reading needs each node at most once
	if fetched > NodeCount(n) {
		t.Fatalf("fetched %d nodes, tree has %d", fetched, NodeCount(n))
	}
	// a bad supplied uncle is refused
	p2, _ := NewPartial(tag, tr.Root(), n)
	given := map[int]Hash{}
	for _, j := range p2.Needed(5) {
		given[j] = tr.Nodes[j]
		given[j] = Hash{1}
	}
	if err := p2.Verify(5, ls[5], given); !errors.Is(err, ErrMismatch) {
		t.Fatalf("bad uncles: %v", err)
	}
	if err := p2.Verify(5, ls[5], nil); err == nil {
		t.Fatal("missing uncles accepted")
	}
}

func TestCheckRejects(t *testing.T) {
	ls := leaves(5)
	tr, _ := Build(tag, ls)
	b := tr.Bytes()
	for name, mut := range map[string]func([]byte) []byte{
		"short":        func(b []byte) []byte { return b[:len(b)-1] },
		"flip root":    func(b []byte) []byte { b[0] ^= 1; return b },
		"flip leaf":    func(b []byte) []byte { b[len(b)-32*4] ^= 1; return b },
		"flip padding": func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"flip inner":   func(b []byte) []byte { b[32*2+5] ^= 1; return b },
	} {
		t.Run(name, func(t *testing.T) {
			c := mut(append([]byte(nil), b...))
			if _, err := Check(tag, tr.Root(), 5, c); err == nil {
				t.Fatal("corrupt tree accepted")
			}
		})
	}
	if _, err := Build(tag, nil); err == nil {
		t.Fatal("empty tree built")
	}
}

func TestPartialLearn(t *testing.T) {
	ls := leaves(9)
	tr, _ := Build(tag, ls)
	p, _ := NewPartial(tag, tr.Root(), 9)
	bad := tr.Bytes()
	bad[40] ^= 1
	if err := p.Learn(bad); err == nil {
		t.Fatal("learnt a corrupt tree")
	}
	if len(p.Needed(4)) == 0 {
		t.Fatal("a failed Learn taught nodes")
	}
	if err := p.Learn(tr.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := range ls {
		if n := p.Needed(i); len(n) != 0 {
			t.Fatalf("leaf %d still needs %v", i, n)
		}
		if err := p.Verify(i, ls[i], nil); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	if err := p.Verify(2, ls[3], nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong leaf after learn: %v", err)
	}
}
