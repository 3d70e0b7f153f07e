// Package hashtree is the Merkle tree used by the immutable-file format: a
// complete binary tree over leaf hashes, padded to a power of two with a
// fixed empty-leaf hash, with interior nodes hashed under a caller-chosen tag
// so that trees of different purposes never share nodes.
//
// Nodes are numbered as in an array heap: node 0 is the root, the children of
// node i are 2i+1 and 2i+2, and for L (a power of two) leaf slots the leaves
// are nodes L-1 .. 2L-2. A tree is stored as its 2L-1 nodes in that order,
// 32 bytes each. A proof for a leaf is its uncle chain: the sibling of each
// node on the path from the leaf up to (not including) the root, leaf level
// first.
package hashtree

import (
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/host/tagged"
)

// Hash is one node.
type Hash = tagged.Sum

// ErrMismatch is returned when a leaf or proof does not lead to the root.
var ErrMismatch = errors.New("hashtree: hash mismatch")

// EmptyLeaf pads the leaf level to a power of two.
var EmptyLeaf = tagged.Hash(tagged.HashTreeEmptyLeaf)

// LeafSlots is the number of leaf slots (a power of two >= 1) for n leaves.
func LeafSlots(n int) int {
	l := 1
	for l < n {
		l <<= 1
	}
	return l
}

// NodeCount is the number of nodes of a tree over n leaves.
func NodeCount(n int) int { return 2*LeafSlots(n) - 1 }

// Depth is the length of a proof for a tree over n leaves.
func Depth(n int) int {
	d := 0
	for l := LeafSlots(n); l > 1; l >>= 1 {
		d++
	}
	return d
}

// LeafIndex is the node index of leaf i in a tree over n leaves.
func LeafIndex(n, i int) int { return LeafSlots(n) - 1 + i }

func sibling(i int) int {
	if i%2 == 1 {
		return i + 1
	}
	return i - 1
}

func parent(i int) int { return (i - 1) / 2 }

// Tree is a complete tree held in memory.
type Tree struct {
	tag    string
	leaves int
	Nodes  []Hash // 2L-1 nodes, heap order
}

// Build makes the tree over leaves (at least one) with interior tag tag.
func Build(tag string, leaves []Hash) (*Tree, error) {
	if len(leaves) == 0 {
		return nil, errors.New("hashtree: build a tree of no leaves")
	}
	l := LeafSlots(len(leaves))
	nodes := make([]Hash, 2*l-1)
	for i := 0; i < l; i++ {
		if i < len(leaves) {
			nodes[l-1+i] = leaves[i]
		} else {
			nodes[l-1+i] = EmptyLeaf
		}
	}
	for i := l - 2; i >= 0; i-- {
		nodes[i] = tagged.Pair(tag, &nodes[2*i+1], &nodes[2*i+2])
	}
	return &Tree{tag: tag, leaves: len(leaves), Nodes: nodes}, nil
}

// Root is node 0.
func (t *Tree) Root() Hash { return t.Nodes[0] }

// Leaves is the number of real leaves.
func (t *Tree) Leaves() int { return t.leaves }

// Bytes returns the tree serialised: 32 bytes per node, heap order.
func (t *Tree) Bytes() []byte {
	b := make([]byte, 0, len(t.Nodes)*tagged.Size)
	for i := range t.Nodes {
		b = append(b, t.Nodes[i][:]...)
	}
	return b
}

// ProofIndexes lists the node indexes of the uncle chain of leaf i in a tree
// over n leaves, leaf level first.
func ProofIndexes(n, i int) []int {
	var out []int
	for idx := LeafIndex(n, i); idx > 0; idx = parent(idx) {
		out = append(out, sibling(idx))
	}
	return out
}

// Proof returns the uncle chain of leaf i.
func (t *Tree) Proof(i int) ([]Hash, error) {
	if i < 0 || i >= t.leaves {
		return nil, fmt.Errorf("hashtree: proof of leaf %d of %d", i, t.leaves)
	}
	idx := ProofIndexes(t.leaves, i)
	out := make([]Hash, len(idx))
	for k, j := range idx {
		out[k] = t.Nodes[j]
	}
	return out, nil
}

// VerifyProof checks that leaf i of a tree over n leaves has hash leaf, given
// its uncle chain and the root.
func VerifyProof(tag string, root Hash, n, i int, leaf Hash, proof []Hash) error {
	if n < 1 || i < 0 || i >= n {
		return fmt.Errorf("hashtree: verify leaf %d of %d leaves", i, n)
	}
	if len(proof) != Depth(n) {
		return fmt.Errorf("hashtree: proof of leaf %d has %d hashes, want %d", i, len(proof), Depth(n))
	}
	cur, idx := leaf, LeafIndex(n, i)
	for _, u := range proof {
		if idx%2 == 1 {
			cur = tagged.Pair(tag, &cur, &u)
		} else {
			cur = tagged.Pair(tag, &u, &cur)
		}
		idx = parent(idx)
	}
	if cur != root {
		return fmt.Errorf("leaf %d: %w", i, ErrMismatch)
	}
	return nil
}

// Partial is a tree of which only the root is trusted at first; it learns
// nodes as leaves are verified against it, so that a downloader holding the
// root can check leaf i with only the uncles it does not know yet
// (incremental verification). It keeps at most a bounded number of nodes.
type Partial struct {
	tag   string
	n     int
	known map[int]Hash
	root  Hash
	max   int
}

// NewPartial trusts root for a tree over n leaves.
func NewPartial(tag string, root Hash, n int) (*Partial, error) {
	if n < 1 {
		return nil, fmt.Errorf("hashtree: partial tree of %d leaves", n)
	}
	p := &Partial{tag: tag, n: n, root: root, max: MaxLearn}
	p.reset()
	return p, nil
}

func (p *Partial) reset() { p.known = map[int]Hash{0: p.root} }

// Leaves is the tree's leaf count.
func (p *Partial) Leaves() int { return p.n }

// Needed lists the node indexes that must be supplied to Verify leaf i.
func (p *Partial) Needed(i int) []int {
	if i < 0 || i >= p.n {
		return nil
	}
	var out []int
	for idx := LeafIndex(p.n, i); ; idx = parent(idx) {
		if _, ok := p.known[idx]; ok {
			return out
		}
		if s := sibling(idx); idx > 0 {
			if _, ok := p.known[s]; !ok {
				out = append(out, s)
			}
		}
	}
}

// Verify checks leaf i against the trusted nodes, using given for the nodes
// Needed named. On success the path and the given nodes become trusted; on
// failure nothing is learnt.
func (p *Partial) Verify(i int, leaf Hash, given map[int]Hash) error {
	if i < 0 || i >= p.n {
		return fmt.Errorf("hashtree: verify leaf %d of %d leaves", i, p.n)
	}
	learnt := map[int]Hash{}
	cur, idx := leaf, LeafIndex(p.n, i)
	for {
		if want, ok := p.known[idx]; ok {
			if want != cur {
				return fmt.Errorf("leaf %d: %w", i, ErrMismatch)
			}
			break
		}
		learnt[idx] = cur
		s := sibling(idx)
		sh, ok := p.known[s]
		if !ok {
			if sh, ok = given[s]; !ok {
				return fmt.Errorf("hashtree: verify leaf %d: node %d not supplied", i, s)
			}
			learnt[s] = sh
		}
		if idx%2 == 1 {
			cur = tagged.Pair(p.tag, &cur, &sh)
		} else {
			cur = tagged.Pair(p.tag, &sh, &cur)
		}
		idx = parent(idx)
	}
	if len(p.known)+len(learnt) > p.max && len(p.known) < NodeCount(p.n) {
		p.reset()
	}
	for k, v := range learnt {
		p.known[k] = v
	}
	return nil
}

// MaxLearn is the largest tree (in nodes) Learn accepts.
const MaxLearn = 1 << 14

// Learn checks a whole serialised tree (as Check does) against the trusted
// root and, if it is right, trusts all its nodes: one read of a small tree
// replaces many reads of uncles.
func (p *Partial) Learn(b []byte) error {
	if NodeCount(p.n) > MaxLearn {
		return fmt.Errorf("hashtree: learn a tree of %d nodes: more than %d", NodeCount(p.n), MaxLearn)
	}
	if _, err := Check(p.tag, p.root, p.n, b); err != nil {
		return err
	}
	known := make(map[int]Hash, NodeCount(p.n))
	for i := 0; i < NodeCount(p.n); i++ {
		var h Hash
		copy(h[:], b[i*tagged.Size:])
		known[i] = h
	}
	p.known = known
	return nil
}

// Check verifies a whole serialised tree over n leaves: size, every interior
// node, and root. It returns the leaf hashes (padding excluded).
func Check(tag string, root Hash, n int, b []byte) ([]Hash, error) {
	if n < 1 {
		return nil, fmt.Errorf("hashtree: check a tree of %d leaves", n)
	}
	if len(b) != NodeCount(n)*tagged.Size {
		return nil, fmt.Errorf("hashtree: tree of %d leaves is %d bytes, want %d", n, len(b), NodeCount(n)*tagged.Size)
	}
	nodes := make([]Hash, NodeCount(n))
	for i := range nodes {
		copy(nodes[i][:], b[i*tagged.Size:])
	}
	if nodes[0] != root {
		return nil, fmt.Errorf("root: %w", ErrMismatch)
	}
	l := LeafSlots(n)
	for i := n; i < l; i++ {
		if nodes[l-1+i] != EmptyLeaf {
			return nil, fmt.Errorf("padding leaf %d: %w", i, ErrMismatch)
		}
	}
	for i := l - 2; i >= 0; i-- {
		if tagged.Pair(tag, &nodes[2*i+1], &nodes[2*i+2]) != nodes[i] {
			return nil, fmt.Errorf("node %d: %w", i, ErrMismatch)
		}
	}
	return nodes[l-1 : l-1+n], nil
}
