// Package chk is tarn's immutable file format (CHK, "content hash key"):
// encryption, segmentation, erasure coding, the three hash trees, the
// extension block (UEB) and the byte layout of a share, as pure libraries
// with no networking. The uploader feeds an Encoder and stores what it
// writes through a ShareSink; the downloader reads through a ShareSource
// with a Decoder, which checks every byte against the read cap before
// returning it. docs/formats.md is the specification.
package chk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

// Segment sizes. 1 MiB is the default: the pipeline's throughput is flat
// from 256 KiB upward (see BenchmarkSegmentSize) while memory per upload is
// about (1 + N/K) segments, ~4.3 MiB at 3-of-10; larger segments only cost
// memory and make range reads fetch more.
const (
	DefaultSegmentSize = 1 << 20
	MaxSegmentSize     = 64 << 20
)

// Sizes of the fixed parts of a share.
const (
	HeaderSize = 64
	UEBSize    = 120
	// CodecNameMax is the longest codec name an extension block holds.
	CodecNameMax = 32
)

// Magic strings; the trailing digit is the format version.
const (
	shareMagic = "tarnshr1"
	uebMagic   = "tarnueb1"
)

// Sentinel errors callers branch on.
var (
	// ErrCorrupt marks a share (or part of one) that fails a check.
	ErrCorrupt = errors.New("chk: corrupt")
	// ErrNotEnoughShares: fewer than K good shares for a segment.
	ErrNotEnoughShares = errors.New("chk: not enough good shares")
)

// Params are the encoding parameters of one file.
type Params struct {
	K, N        int
	SegmentSize int
}

// DefaultParams are 3-of-10 with 1 MiB segments.
var DefaultParams = Params{K: 3, N: 10, SegmentSize: DefaultSegmentSize}

// Validate checks 1 <= K <= N <= 256 and 1 <= SegmentSize <= MaxSegmentSize.
func (p Params) Validate() error {
	if err := (codec.Params{K: p.K, N: p.N}).Validate(); err != nil {
		return fmt.Errorf("chk params: %w", err)
	}
	if p.SegmentSize < 1 || p.SegmentSize > MaxSegmentSize {
		return fmt.Errorf("chk params: segment size %d: need 1..%d", p.SegmentSize, MaxSegmentSize)
	}
	return nil
}

func (p Params) codec() codec.Params { return codec.Params{K: p.K, N: p.N} }

// Layout is where everything sits in every share of one file. It follows
// from the parameters and the file size alone, so a share's size is known
// before anything is written and a reader can check a header against it.
type Layout struct {
	Params
	Size          int64 // file size in bytes (>= 1)
	Segments      int   // number of segments
	TailSegment   int   // length of the last segment
	BlockSize     int   // block length of every full segment
	TailBlockSize int   // block length of the last segment

	UEBOffset       int64 // always HeaderSize
	ProofOffset     int64 // needed share hashes: Depth(N) x 32 bytes
	BlockTreeOffset int64 // block hash tree: NodeCount(Segments) x 32 bytes
	CipherOffset    int64 // ciphertext hash tree: NodeCount(Segments) x 32
	BlocksOffset    int64 // the blocks, segment by segment
	ShareSize       int64 // total
}

// NewLayout computes the layout of a file of size bytes.
func NewLayout(p Params, size int64) (Layout, error) {
	if err := p.Validate(); err != nil {
		return Layout{}, err
	}
	if size < 1 || size > cap.MaxFileSize {
		return Layout{}, fmt.Errorf("chk layout: file size %d: need 1..%d (an empty file is a lit cap)", size, int64(cap.MaxFileSize))
	}
	seg := int64(p.SegmentSize)
	nseg := (size + seg - 1) / seg
	if nseg > 1<<40 {
		return Layout{}, fmt.Errorf("chk layout: %d segments of %d bytes is too many", nseg, seg)
	}
	l := Layout{Params: p, Size: size, Segments: int(nseg)}
	l.TailSegment = int(size - (nseg-1)*seg)
	l.BlockSize = codec.BlockSize(p.codec(), p.SegmentSize)
	l.TailBlockSize = codec.BlockSize(p.codec(), l.TailSegment)
	tree := int64(hashtree.NodeCount(l.Segments)) * tagged.Size
	l.UEBOffset = HeaderSize
	l.ProofOffset = l.UEBOffset + UEBSize
	l.BlockTreeOffset = l.ProofOffset + int64(hashtree.Depth(p.N))*tagged.Size
	l.CipherOffset = l.BlockTreeOffset + tree
	l.BlocksOffset = l.CipherOffset + tree
	l.ShareSize = l.BlocksOffset + (nseg-1)*int64(l.BlockSize) + int64(l.TailBlockSize)
	return l, nil
}

// ShareSize is the size of each share of a file of size bytes.
func ShareSize(p Params, size int64) (int64, error) {
	l, err := NewLayout(p, size)
	return l.ShareSize, err
}

// SegmentLen is the plaintext length of segment i.
func (l Layout) SegmentLen(i int) int {
	if i == l.Segments-1 {
		return l.TailSegment
	}
	return l.SegmentSize
}

// Block returns the offset and length of block i within a share.
func (l Layout) Block(i int) (off int64, n int) {
	n = l.BlockSize
	if i == l.Segments-1 {
		n = l.TailBlockSize
	}
	return l.BlocksOffset + int64(i)*int64(l.BlockSize), n
}

// Header is the first HeaderSize bytes of a share. It is not hashed: a
// reader trusts it only after checking it equals the header the verified
// extension block implies.
type Header struct {
	Share           int
	BlockSize       int
	UEBOffset       int64
	ProofOffset     int64
	BlockTreeOffset int64
	CipherOffset    int64
	BlocksOffset    int64
	ShareSize       int64
}

// Header is the header share shnum of this layout carries.
func (l Layout) Header(shnum int) Header {
	return Header{Share: shnum, BlockSize: l.BlockSize, UEBOffset: l.UEBOffset, ProofOffset: l.ProofOffset,
		BlockTreeOffset: l.BlockTreeOffset, CipherOffset: l.CipherOffset, BlocksOffset: l.BlocksOffset, ShareSize: l.ShareSize}
}

// Marshal encodes the header.
func (h Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, shareMagic)
	binary.BigEndian.PutUint16(b[8:], uint16(h.Share))
	binary.BigEndian.PutUint32(b[12:], uint32(h.BlockSize))
	for i, v := range []int64{h.UEBOffset, h.ProofOffset, h.BlockTreeOffset, h.CipherOffset, h.BlocksOffset, h.ShareSize} {
		binary.BigEndian.PutUint64(b[16+8*i:], uint64(v))
	}
	return b
}

// ParseHeader decodes and sanity-checks a share header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("share header: %d bytes, want %d: %w", len(b), HeaderSize, ErrCorrupt)
	}
	if string(b[:8]) != shareMagic {
		if string(b[:7]) == shareMagic[:7] {
			return Header{}, fmt.Errorf("share header: format version %q not supported: %w", b[7], ErrCorrupt)
		}
		return Header{}, fmt.Errorf("share header: bad magic %q: %w", b[:8], ErrCorrupt)
	}
	if b[10] != 0 || b[11] != 0 {
		return Header{}, fmt.Errorf("share header: reserved bytes not zero: %w", ErrCorrupt)
	}
	h := Header{Share: int(binary.BigEndian.Uint16(b[8:])), BlockSize: int(binary.BigEndian.Uint32(b[12:]))}
	offs := make([]int64, 6)
	for i := range offs {
		v := binary.BigEndian.Uint64(b[16+8*i:])
		if v > cap.MaxFileSize*2 {
			return Header{}, fmt.Errorf("share header: offset %d out of range: %w", v, ErrCorrupt)
		}
		offs[i] = int64(v)
	}
	h.UEBOffset, h.ProofOffset, h.BlockTreeOffset, h.CipherOffset, h.BlocksOffset, h.ShareSize = offs[0], offs[1], offs[2], offs[3], offs[4], offs[5]
	if h.Share >= codec.MaxShares {
		return Header{}, fmt.Errorf("share header: share number %d out of range: %w", h.Share, ErrCorrupt)
	}
	if h.UEBOffset != HeaderSize || h.ProofOffset != HeaderSize+UEBSize {
		return Header{}, fmt.Errorf("share header: extension block not at %d: %w", HeaderSize, ErrCorrupt)
	}
	if !(h.ProofOffset <= h.BlockTreeOffset && h.BlockTreeOffset <= h.CipherOffset &&
		h.CipherOffset <= h.BlocksOffset && h.BlocksOffset <= h.ShareSize) {
		return Header{}, fmt.Errorf("share header: offsets out of order: %w", ErrCorrupt)
	}
	return h, nil
}

// UEB is the extension block: everything a reader must trust about the file
// beyond the cap, itself trusted by its hash in the cap.
type UEB struct {
	K, N           int
	SegmentSize    int
	Size           int64
	Codec          string
	ShareRoot      tagged.Sum // root of the share hash tree
	CiphertextRoot tagged.Sum // root of the ciphertext hash tree
}

// Marshal encodes the UEB (UEBSize bytes).
func (u UEB) Marshal() []byte {
	b := make([]byte, UEBSize)
	copy(b, uebMagic)
	binary.BigEndian.PutUint16(b[8:], uint16(u.K))
	binary.BigEndian.PutUint16(b[10:], uint16(u.N))
	binary.BigEndian.PutUint32(b[12:], uint32(u.SegmentSize))
	binary.BigEndian.PutUint64(b[16:], uint64(u.Size))
	copy(b[24:24+CodecNameMax], u.Codec)
	copy(b[56:88], u.ShareRoot[:])
	copy(b[88:120], u.CiphertextRoot[:])
	return b
}

// Hash is the UEB's tagged hash, the one a cap carries.
func (u UEB) Hash() tagged.Sum { return tagged.Hash(tagged.ChkUEB, u.Marshal()) }

// Params are the UEB's encoding parameters.
func (u UEB) Params() Params { return Params{K: u.K, N: u.N, SegmentSize: u.SegmentSize} }

// ParseUEB decodes and checks an extension block. It is strict, so that
// exactly one byte string encodes each UEB.
func ParseUEB(b []byte) (UEB, error) {
	if len(b) != UEBSize {
		return UEB{}, fmt.Errorf("extension block: %d bytes, want %d: %w", len(b), UEBSize, ErrCorrupt)
	}
	if string(b[:8]) != uebMagic {
		return UEB{}, fmt.Errorf("extension block: bad magic %q: %w", b[:8], ErrCorrupt)
	}
	u := UEB{
		K:           int(binary.BigEndian.Uint16(b[8:])),
		N:           int(binary.BigEndian.Uint16(b[10:])),
		SegmentSize: int(binary.BigEndian.Uint32(b[12:])),
	}
	sz := binary.BigEndian.Uint64(b[16:])
	if sz < 1 || sz > cap.MaxFileSize {
		return UEB{}, fmt.Errorf("extension block: file size %d out of range: %w", sz, ErrCorrupt)
	}
	u.Size = int64(sz)
	name := b[24 : 24+CodecNameMax]
	n := 0
	for n < len(name) && name[n] != 0 {
		if name[n] < 0x21 || name[n] > 0x7e {
			return UEB{}, fmt.Errorf("extension block: codec name not printable ascii: %w", ErrCorrupt)
		}
		n++
	}
	for _, c := range name[n:] {
		if c != 0 {
			return UEB{}, fmt.Errorf("extension block: codec name padding not zero: %w", ErrCorrupt)
		}
	}
	if n == 0 {
		return UEB{}, fmt.Errorf("extension block: no codec name: %w", ErrCorrupt)
	}
	u.Codec = string(name[:n])
	copy(u.ShareRoot[:], b[56:88])
	copy(u.CiphertextRoot[:], b[88:120])
	if err := u.Params().Validate(); err != nil {
		return UEB{}, fmt.Errorf("extension block: %v: %w", err, ErrCorrupt)
	}
	return u, nil
}

func checkCodecName(name string) error {
	if len(name) == 0 || len(name) > CodecNameMax {
		return fmt.Errorf("codec name %q: need 1..%d characters", name, CodecNameMax)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x21 || name[i] > 0x7e {
			return fmt.Errorf("codec name %q: need printable ascii without spaces", name)
		}
	}
	return nil
}
