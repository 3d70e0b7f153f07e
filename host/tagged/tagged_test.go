package tagged

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/zeebo/blake3"
)

func TestTagsSeparate(t *testing.T) {
	data := []byte("same input")
	tags := []string{ChkConvergentKey, ChkStorageIndex, ChkBlock, ChkBlockTreeNode, ChkShareTreeNode,
		ChkSegment, ChkCiphertextNode, ChkUEB, HashTreeEmptyLeaf}
	seen := map[Sum]string{}
	for _, tag := range tags {
		s := Hash(tag, data)
		if prev, ok := seen[s]; ok {
			t.Fatalf("tags %q and %q give the same hash", prev, tag)
		}
		seen[s] = tag
	}
}

func TestHashMatchesHasher(t *testing.T) {
	h := New(ChkBlock)
	h.Write([]byte("ab"))
	h.Write([]byte("cd"))
	if got, want := h.Sum(), Hash(ChkBlock, []byte("a"), []byte("bcd")); got != want {
		t.Fatalf("streaming %x != one-shot %x", got, want)
	}
}

// TestKnownVector pins the format: if this changes, every stored file breaks.
func TestKnownVector(t *testing.T) {
	got := Hash(ChkBlock, []byte("tarn"))
	const want = "d0cf5fd021306a6fe0a6d9e76fb3cf77752c33ff0b2bb129493936fee6bc2c2f"
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("ChkBlock(\"tarn\") = %x, want %s", got, want)
	}
}

func TestWriteBytesPrefixes(t *testing.T) {
	a, b := New(ChkConvergentKey), New(ChkConvergentKey)
	a.WriteBytes([]byte("ab"))
	a.WriteBytes([]byte("c"))
	b.WriteBytes([]byte("a"))
	b.WriteBytes([]byte("bc"))
	if a.Sum() == b.Sum() {
		t.Fatal("length-prefixed fields shifted into each other")
	}
}

var sink Sum

// BenchmarkHash1MiB is the benchmark behind the hash choice: BLAKE3 (as used,
// in derive-key mode) against SHA-256 on 1 MiB inputs.
func BenchmarkHash1MiB(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.Run("blake3-derivekey", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sink = Hash(ChkBlock, buf)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sink = sha256.Sum256(buf)
		}
	})
	// Block-sized input: a 1 MiB segment at K=3 gives ~341 KiB blocks.
	blk := buf[:(1<<20+2)/3]
	b.Run("blake3-block341k", func(b *testing.B) {
		b.SetBytes(int64(len(blk)))
		for b.Loop() {
			sink = Hash(ChkBlock, blk)
		}
	})
	b.Run("sha256-block341k", func(b *testing.B) {
		b.SetBytes(int64(len(blk)))
		for b.Loop() {
			sink = sha256.Sum256(blk)
		}
	})
	var l, r Sum
	b.Run("blake3-node", func(b *testing.B) {
		for b.Loop() {
			sink = Pair(ChkBlockTreeNode, &l, &r)
		}
	})
}

// TestPooledHashersReset: a reused hasher gives what a fresh one gives.
func TestPooledHashersReset(t *testing.T) {
	var want Sum
	blake3.DeriveKey(ChkUEB, []byte("abc"), want[:])
	for i := range 5 {
		Hash(ChkUEB, []byte("other input"))
		if got := Hash(ChkUEB, []byte("abc")); got != want {
			t.Fatalf("call %d: %x, want %x", i, got, want)
		}
	}
}
