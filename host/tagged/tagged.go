// Package tagged is tarn's one hash function: BLAKE3-256 in derive-key mode,
// where the derive-key context string is a tag naming the hash's purpose.
// Two hashes with different tags never collide by construction, so a block
// hash can never be replayed as a node hash, a key or a storage index.
//
// The choice of BLAKE3 over SHA-256 was made by benchmark (see
// BenchmarkHash1MiB and docs/formats.md).
package tagged

import (
	"encoding/binary"
	"sync"

	"github.com/zeebo/blake3"
)

// Size is the length of every tagged hash in bytes.
const Size = 32

// Sum is a tagged hash value.
type Sum = [Size]byte

// The tags of every hash in the immutable-file format. A tag is a BLAKE3
// derive-key context: globally unique, hard-coded, with a date and version.
const (
	ChkConvergentKey  = "tarn 2026 chk convergent key v1"
	ChkStorageIndex   = "tarn 2026 chk storage index v1"
	ChkBlock          = "tarn 2026 chk block v1"
	ChkBlockTreeNode  = "tarn 2026 chk block tree node v1"
	ChkShareTreeNode  = "tarn 2026 chk share tree node v1"
	ChkSegment        = "tarn 2026 chk ciphertext segment v1"
	ChkCiphertextNode = "tarn 2026 chk ciphertext tree node v1"
	ChkUEB            = "tarn 2026 chk extension block v1"
	HashTreeEmptyLeaf = "tarn 2026 hashtree empty leaf v1"
)

// Hasher is a running tagged hash.
type Hasher struct{ h *blake3.Hasher }

// New starts a tagged hash for tag.
func New(tag string) *Hasher { return &Hasher{h: blake3.NewDeriveKey(tag)} }

// Write adds p; it never fails.
func (h *Hasher) Write(p []byte) (int, error) { return h.h.Write(p) }

// WriteUint64 adds v as 8 bytes big-endian.
func (h *Hasher) WriteUint64(v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.h.Write(b[:])
}

// WriteBytes adds p prefixed by its length (8 bytes big-endian), so that
// consecutive variable-length fields cannot be shifted into one another.
func (h *Hasher) WriteBytes(p []byte) {
	h.WriteUint64(uint64(len(p)))
	h.h.Write(p)
}

// Clone returns an independent copy of the running hash.
func (h *Hasher) Clone() *Hasher { return &Hasher{h: h.h.Clone()} }

// Sum returns the 32-byte hash of everything written.
func (h *Hasher) Sum() Sum {
	var s Sum
	h.h.Sum(s[:0])
	return s
}

// pools keeps reset hashers per tag: building a derive-key hasher hashes
// the tag and allocates several KiB, which dominated small-node hashing.
var pools sync.Map // tag -> *sync.Pool of *blake3.Hasher

func get(tag string) (*sync.Pool, *blake3.Hasher) {
	pv, ok := pools.Load(tag)
	if !ok {
		pv, _ = pools.LoadOrStore(tag, &sync.Pool{New: func() any { return blake3.NewDeriveKey(tag) }})
	}
	pool := pv.(*sync.Pool)
	return pool, pool.Get().(*blake3.Hasher)
}

// Hash returns the tagged hash of the concatenation of parts. Callers whose
// parts vary in length must length-prefix them (WriteBytes) instead.
func Hash(tag string, parts ...[]byte) Sum {
	pool, h := get(tag)
	for _, p := range parts {
		h.Write(p)
	}
	var s Sum
	h.Sum(s[:0])
	h.Reset()
	pool.Put(h)
	return s
}

// Pair returns the tagged hash of left||right: an interior hash-tree node.
func Pair(tag string, left, right *Sum) Sum {
	var buf [2 * Size]byte
	copy(buf[:Size], left[:])
	copy(buf[Size:], right[:])
	return Hash(tag, buf[:])
}
