// Package mutable is tarn's mutable-file format: slots whose content
// changes in signed, numbered versions. A slot has an Ed25519 key pair
// (host/cap: tarn:mut write, tarn:mut-ro read and tarn:mut-verify caps);
// each version is encrypted under a key derived from the read key and a
// fresh salt, erasure-coded into N shares, bound by a share hash tree whose
// root is in a header the slot key signs, and stored as one storage-server
// slot per share.
//
// This package knows no servers: it builds and checks share bytes (Encode,
// ParseShare, VerifyShare, Decode), gives storage servers the write check
// they run on every slot write (ValidateSlotWrite), and keeps the highest
// version a client has seen (SeenStore) for rollback protection. host/grid
// publishes and retrieves versions over the grid. docs/formats.md ("Mutable
// files") is the specification.
package mutable

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

// Layout sizes (docs/formats.md).
const (
	HeaderSize    = 144
	SaltSize      = 16
	SignatureSize = ed25519.SignatureSize
	PublicKeySize = ed25519.PublicKeySize
	// shareFixed is the share's bytes before the proof: magic, public
	// key, header, signature, share number, reserved, block size.
	shareFixed   = 8 + PublicKeySize + HeaderSize + SignatureSize + 2 + 2 + 4
	maxCodecName = 32
)

// MaxSlotSize is the largest share a storage server keeps in one slot
// (storageserver.MaxSlotSize, repeated here so that this package does not
// import the server).
const MaxSlotSize = 1 << 20

// Magic strings; the digit is the format version.
const (
	headerMagic = "tarnmut1"
	shareMagic  = "tarnmsh1"
)

// Sentinel errors callers branch on.
var (
	// ErrFormat: bytes that are not a well-formed header or share.
	ErrFormat = errors.New("mutable: malformed")
	// ErrBadSignature: a share whose signature, key or proof does not check.
	ErrBadSignature = errors.New("mutable: bad signature")
	// ErrCorrupt: a share or version that fails a hash check.
	ErrCorrupt = errors.New("mutable: corrupt")
	// ErrTooLarge: content over MaxSize for its parameters.
	ErrTooLarge = errors.New("mutable: content too large")
	// ErrNotEnoughShares: fewer than K good shares of a version.
	ErrNotEnoughShares = errors.New("mutable: not enough shares")
)

// Header is the signed part of a version: everything a reader needs to
// check and decode it.
type Header struct {
	// Seq is the version's sequence number, 1 for the first version; a
	// later version has a higher one.
	Seq uint64
	// K of N shares rebuild the version.
	K, N int
	// Size is the content's length in bytes.
	Size int64
	// Salt is fresh per version; with the read key it gives the data key.
	Salt [SaltSize]byte
	// Codec names the erasure code (sdk/codec).
	Codec string
	// Root is the share hash tree's root.
	Root [tagged.Size]byte
	// CiphertextHash is the hash of the whole ciphertext, so that every K
	// shares decode to the same bytes.
	CiphertextHash [tagged.Size]byte
}

// Params are the header's encoding parameters.
func (h *Header) Params() codec.Params { return codec.Params{K: h.K, N: h.N} }

// BlockSize is the size of each share's block: ceil(max(Size,1)/K), so an
// empty version still has one-byte blocks.
func (h *Header) BlockSize() int { return codec.BlockSize(h.Params(), max(int(h.Size), 1)) }

// Marshal returns the header's HeaderSize bytes.
func (h *Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b[0:8], headerMagic)
	binary.BigEndian.PutUint64(b[8:], h.Seq)
	binary.BigEndian.PutUint16(b[16:], uint16(h.K))
	binary.BigEndian.PutUint16(b[18:], uint16(h.N))
	binary.BigEndian.PutUint64(b[24:], uint64(h.Size))
	copy(b[32:48], h.Salt[:])
	copy(b[48:80], h.Codec)
	copy(b[80:112], h.Root[:])
	copy(b[112:144], h.CiphertextHash[:])
	return b
}

// ID is the version's identity: the tagged hash of its header, which is
// what the slot key signs. Two versions with one sequence number (from
// racing writers) have different IDs.
func (h *Header) ID() [tagged.Size]byte { return tagged.Hash(tagged.MutSignedHeader, h.Marshal()) }

// ParseHeader reads a header strictly: every field in range, reserved
// bytes zero, the codec name canonical.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) != HeaderSize {
		return h, fmt.Errorf("%w: header is %d bytes, want %d", ErrFormat, len(b), HeaderSize)
	}
	if string(b[0:8]) != headerMagic {
		return h, fmt.Errorf("%w: header magic %q, want %q", ErrFormat, b[0:8], headerMagic)
	}
	h.Seq = binary.BigEndian.Uint64(b[8:])
	h.K = int(binary.BigEndian.Uint16(b[16:]))
	h.N = int(binary.BigEndian.Uint16(b[18:]))
	size := binary.BigEndian.Uint64(b[24:])
	copy(h.Salt[:], b[32:48])
	copy(h.Root[:], b[80:112])
	copy(h.CiphertextHash[:], b[112:144])
	switch {
	case h.Seq == 0 || h.Seq > MaxSeq:
		return h, fmt.Errorf("%w: header sequence number %d out of range 1..%d", ErrFormat, h.Seq, uint64(MaxSeq))
	case h.Params().Validate() != nil:
		return h, fmt.Errorf("%w: header K=%d N=%d: need 1 <= K <= N <= %d", ErrFormat, h.K, h.N, codec.MaxShares)
	case binary.BigEndian.Uint32(b[20:]) != 0:
		return h, fmt.Errorf("%w: header reserved bytes are not zero", ErrFormat)
	case size > uint64(MaxSize(h.Params())):
		return h, fmt.Errorf("%w: header size %d over %d for K=%d N=%d", ErrFormat, size, MaxSize(h.Params()), h.K, h.N)
	}
	h.Size = int64(size)
	name, err := parseCodecName(b[48:80])
	if err != nil {
		return h, fmt.Errorf("%w: header codec name: %v", ErrFormat, err)
	}
	h.Codec = name
	return h, nil
}

// MaxSeq bounds sequence numbers (2^62), far above any real count of
// versions and safe in int64 arithmetic.
const MaxSeq = 1 << 62

// MaxSize is the largest content of a version with parameters p: K blocks
// of the largest block that still fits a share in one server slot. At
// 3-of-10 it is 3,144,576 bytes (3 MiB less 1,152); it grows with K.
func MaxSize(p codec.Params) int64 {
	if p.Validate() != nil {
		return 0
	}
	return int64(p.K) * int64(MaxSlotSize-shareFixed-tagged.Size*hashtree.Depth(p.N))
}

func checkCodecName(name string) error {
	if len(name) < 1 || len(name) > maxCodecName {
		return fmt.Errorf("codec name %q is not 1 to %d bytes", name, maxCodecName)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x21 || name[i] > 0x7e {
			return fmt.Errorf("codec name %q has a byte outside printable ASCII", name)
		}
	}
	return nil
}

func parseCodecName(b []byte) (string, error) {
	name := string(bytes.TrimRight(b, "\x00"))
	if err := checkCodecName(name); err != nil {
		return "", err
	}
	return name, nil
}

// Share is one share of one version, as a slot holds it.
type Share struct {
	PublicKey ed25519.PublicKey
	Header    Header
	Signature [SignatureSize]byte
	// Num is the share number (0..N-1), which is also its slot number.
	Num int
	// Proof is the share hash tree's uncle chain for leaf Num.
	Proof []hashtree.Hash
	// Block is the share's erasure-coded block of the ciphertext.
	Block []byte
}

// ShareSize is the length of every share of a version with header h.
func ShareSize(h *Header) int {
	return shareFixed + tagged.Size*hashtree.Depth(h.N) + h.BlockSize()
}

// Marshal returns the share's bytes (docs/formats.md, share layout).
func (s *Share) Marshal() []byte {
	b := make([]byte, 0, ShareSize(&s.Header))
	b = append(b, shareMagic...)
	b = append(b, s.PublicKey...)
	b = append(b, s.Header.Marshal()...)
	b = append(b, s.Signature[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(s.Num))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Block)))
	for _, p := range s.Proof {
		b = append(b, p[:]...)
	}
	return append(b, s.Block...)
}

// ParseShare reads a share's structure strictly (lengths, ranges, reserved
// bytes). It checks no signature or hash: VerifyShare does. The share does
// not keep b.
func ParseShare(b []byte) (*Share, error) {
	if len(b) < shareFixed {
		return nil, fmt.Errorf("%w: share of %d bytes, shorter than %d", ErrFormat, len(b), shareFixed)
	}
	if len(b) > MaxSlotSize {
		return nil, fmt.Errorf("%w: share of %d bytes, longer than %d", ErrFormat, len(b), MaxSlotSize)
	}
	if string(b[0:8]) != shareMagic {
		return nil, fmt.Errorf("%w: share magic %q, want %q", ErrFormat, b[0:8], shareMagic)
	}
	s := &Share{PublicKey: ed25519.PublicKey(bytes.Clone(b[8:40]))}
	h, err := ParseHeader(b[40 : 40+HeaderSize])
	if err != nil {
		return nil, err
	}
	s.Header = h
	off := 40 + HeaderSize
	copy(s.Signature[:], b[off:off+SignatureSize])
	off += SignatureSize
	s.Num = int(binary.BigEndian.Uint16(b[off:]))
	if s.Num >= h.N {
		return nil, fmt.Errorf("%w: share number %d of N=%d", ErrFormat, s.Num, h.N)
	}
	if binary.BigEndian.Uint16(b[off+2:]) != 0 {
		return nil, fmt.Errorf("%w: share %d reserved bytes are not zero", ErrFormat, s.Num)
	}
	if bs := int(binary.BigEndian.Uint32(b[off+4:])); bs != h.BlockSize() {
		return nil, fmt.Errorf("%w: share %d block size %d, header implies %d", ErrFormat, s.Num, bs, h.BlockSize())
	}
	if len(b) != ShareSize(&h) {
		return nil, fmt.Errorf("%w: share %d is %d bytes, header implies %d", ErrFormat, s.Num, len(b), ShareSize(&h))
	}
	off = shareFixed
	d := hashtree.Depth(h.N)
	s.Proof = make([]hashtree.Hash, d)
	for i := range s.Proof {
		copy(s.Proof[i][:], b[off:])
		off += tagged.Size
	}
	s.Block = bytes.Clone(b[off:])
	return s, nil
}

// PublicKeyHash is the hash of the share's public key, as caps hold it.
func (s *Share) PublicKeyHash() [cap.PublicKeyHashSize]byte { return cap.PublicKeyHashOf(s.PublicKey) }

// Verify checks the share against the slot's public key hash: the key is
// the slot's, the header is signed by it, and the block leads through the
// proof to the signed root. Only a verified share is ever used.
func (s *Share) Verify(pkh [cap.PublicKeyHashSize]byte) error {
	if s.PublicKeyHash() != pkh {
		return fmt.Errorf("share %d: %w: public key is not the slot's", s.Num, ErrBadSignature)
	}
	id := s.Header.ID()
	if !ed25519.Verify(s.PublicKey, id[:], s.Signature[:]) {
		return fmt.Errorf("share %d: %w: header of version %d", s.Num, ErrBadSignature, s.Header.Seq)
	}
	leaf := tagged.Hash(tagged.MutBlock, s.Block)
	if err := hashtree.VerifyProof(tagged.MutShareTreeNode, s.Header.Root, s.Header.N, s.Num, leaf, s.Proof); err != nil {
		return fmt.Errorf("share %d of version %d: %w: block does not match the signed root: %v", s.Num, s.Header.Seq, ErrCorrupt, err)
	}
	return nil
}

// VerifyShare parses b and verifies it against the slot's public key hash.
func VerifyShare(pkh [cap.PublicKeyHashSize]byte, b []byte) (*Share, error) {
	s, err := ParseShare(b)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(pkh); err != nil {
		return nil, err
	}
	return s, nil
}
