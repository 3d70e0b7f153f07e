package dirnode

import (
	"encoding/binary"
	"fmt"
)

// rootMagic starts every root: format name and version.
var rootMagic = [4]byte{'T', 'D', 'R', 1}

// Bucket forms in the root.
const (
	formInline = 0
	formChunk  = 1
)

// maxDepth bounds how finely the name-hash space is cut. A bucket at this
// depth is not split further even when large (only names sharing a 40-bit
// keyed hash prefix could get there).
const maxDepth = 40

// maxBuckets bounds the buckets a decoder accepts (2^20 is far more than a
// slot holds).
const maxBuckets = 1 << 20

// bucketRef is one bucket of the root: the names whose hash starts with
// the depth bits of lo.
type bucketRef struct {
	depth  uint8
	lo     uint64 // first hash of its range (computed, not stored)
	count  int
	inline []byte // encoded bucket when held in the root
	chunk  string // chunk reference (an immutable read cap) otherwise
}

// span is the size of a bucket's hash range; 0 stands for 2^64 (depth 0).
func span(depth uint8) uint64 {
	if depth == 0 {
		return 0
	}
	return 1 << (64 - uint(depth))
}

// Root is a decoded directory root: the bucket index.
type Root struct {
	buckets []bucketRef
}

// EmptyRoot is the root of an empty directory.
func EmptyRoot() []byte {
	r := &Root{buckets: []bucketRef{{inline: encodeBucket(nil)}}}
	return r.Encode()
}

// Len is the number of entries, known without reading any chunk.
func (r *Root) Len() int {
	n := 0
	for _, b := range r.buckets {
		n += b.count
	}
	return n
}

// Buckets is the number of buckets; Chunks how many live in chunks.
func (r *Root) Buckets() int { return len(r.buckets) }

// Chunks lists the chunk references of the root (for repair, leases and
// tests).
func (r *Root) Chunks() []string {
	var out []string
	for _, b := range r.buckets {
		if b.chunk != "" {
			out = append(out, b.chunk)
		}
	}
	return out
}

// Encode is the root's bytes.
func (r *Root) Encode() []byte {
	n := 8
	for _, b := range r.buckets {
		n += 16 + len(b.inline) + len(b.chunk)
	}
	out := make([]byte, 0, n)
	out = append(out, rootMagic[:]...)
	out = binary.AppendUvarint(out, uint64(len(r.buckets)))
	for _, b := range r.buckets {
		out = append(out, b.depth)
		out = binary.AppendUvarint(out, uint64(b.count))
		if b.chunk != "" {
			out = append(out, formChunk)
			out = appendStr(out, b.chunk)
		} else {
			out = append(out, formInline)
			out = binary.AppendUvarint(out, uint64(len(b.inline)))
			out = append(out, b.inline...)
		}
	}
	return out
}

// DecodeRoot decodes a root. The buckets must tile the 64-bit hash space
// in order, each aligned to its own size; counts must be plausible. Inline
// buckets are checked when first read.
func DecodeRoot(b []byte) (*Root, error) {
	if len(b) < len(rootMagic) || [4]byte(b[:4]) != rootMagic {
		return nil, fmt.Errorf("%w: not a directory root (bad magic or version)", ErrFormat)
	}
	r := &reader{b: b[4:]}
	n := r.uvarint("bucket count")
	if r.err != nil {
		return nil, r.err
	}
	if n == 0 || n > maxBuckets || n > uint64(len(r.b)/4) {
		return nil, fmt.Errorf("%w: bucket count %d", ErrFormat, n)
	}
	root := &Root{buckets: make([]bucketRef, 0, n)}
	var pos uint64
	done := false
	for i := uint64(0); i < n; i++ {
		var br bucketRef
		br.depth = r.byte("bucket depth")
		cnt := r.uvarint("bucket entry count")
		form := r.byte("bucket form")
		data := r.bytes("bucket data", maxBucketBytes)
		if r.err != nil {
			return nil, fmt.Errorf("bucket %d: %w", i, r.err)
		}
		if cnt > uint64(len(b)) && form == formInline || cnt > 1<<40 {
			return nil, fmt.Errorf("%w: bucket %d count %d implausible", ErrFormat, i, cnt)
		}
		br.count = int(cnt)
		switch form {
		case formInline:
			br.inline = data
		case formChunk:
			if len(data) == 0 || len(data) > MaxCapLen {
				return nil, fmt.Errorf("%w: bucket %d chunk reference of %d bytes", ErrFormat, i, len(data))
			}
			br.chunk = string(data)
		default:
			return nil, fmt.Errorf("%w: bucket %d form %d unknown", ErrFormat, i, form)
		}
		switch {
		case done:
			return nil, fmt.Errorf("%w: bucket %d after the hash space is covered", ErrFormat, i)
		case br.depth > maxDepth:
			return nil, fmt.Errorf("%w: bucket %d depth %d beyond %d", ErrFormat, i, br.depth, maxDepth)
		case br.depth == 0:
			if n != 1 {
				return nil, fmt.Errorf("%w: bucket %d of depth 0 among %d buckets", ErrFormat, i, n)
			}
			done = true
		default:
			s := span(br.depth)
			if pos%s != 0 {
				return nil, fmt.Errorf("%w: bucket %d at %#x not aligned to depth %d", ErrFormat, i, pos, br.depth)
			}
			br.lo = pos
			pos += s
			done = pos == 0
		}
		root.buckets = append(root.buckets, br)
	}
	if !done {
		return nil, fmt.Errorf("%w: buckets do not cover the hash space", ErrFormat)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last bucket", ErrFormat, len(r.b))
	}
	return root, nil
}

// maxBucketBytes bounds one inline bucket in a root.
const maxBucketBytes = 16 << 20

// find returns the index of the bucket holding hash h.
func (r *Root) find(h uint64) int {
	lo, hi := 0, len(r.buckets)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if r.buckets[mid].lo <= h {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
