package mutable

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

// DataKey is the AES-256 key of one version: the tagged hash of the read
// key and the version's salt. A fresh salt per version means a key
// encrypts one plaintext only, so CTR runs from a zero IV.
func DataKey(readKey cap.Key, salt [SaltSize]byte) cap.Key {
	return cap.Key(tagged.Hash(tagged.MutDataKey, readKey[:], salt[:]))
}

func crypt(key cap.Key, dst, src []byte) {
	blk, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key never fails
	}
	cipher.NewCTR(blk, make([]byte, aes.BlockSize)).XORKeyStream(dst, src)
}

// randRead makes salts; tests that need the same shares in every process
// (fuzzing) replace it.
var randRead = rand.Read

// Version is an encoded version: its header and its N shares' bytes,
// share i at index i.
type Version struct {
	Header Header
	Shares [][]byte
}

// Encode builds version seq of the slot w holds, with content data coded
// K-of-N by c. The content may be at most MaxSize(p) bytes.
func Encode(ctx context.Context, c codec.Codec, w cap.MutableWrite, seq uint64, p codec.Params, data []byte) (*Version, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("encode mutable version %d: %w", seq, err)
	}
	if seq == 0 || seq > MaxSeq {
		return nil, fmt.Errorf("encode mutable version %d: sequence number out of range 1..%d", seq, uint64(MaxSeq))
	}
	if int64(len(data)) > MaxSize(p) {
		return nil, fmt.Errorf("encode mutable version %d: %w: %d bytes, limit %d at K=%d N=%d", seq, ErrTooLarge, len(data), MaxSize(p), p.K, p.N)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("encode mutable version %d: codec: %w", seq, err)
	}
	if err := checkCodecName(info.Name); err != nil {
		return nil, fmt.Errorf("encode mutable version %d: %w", seq, err)
	}
	h := Header{Seq: seq, K: p.K, N: p.N, Size: int64(len(data)), Codec: info.Name}
	if _, err := randRead(h.Salt[:]); err != nil {
		return nil, fmt.Errorf("encode mutable version %d: salt: %w", seq, err)
	}
	rc := w.ReadCap()
	bs := h.BlockSize()
	// The ciphertext, zero-padded to K blocks: the segment the codec codes.
	seg := make([]byte, p.K*bs)
	crypt(DataKey(rc.ReadKey, h.Salt), seg[:len(data)], data)
	h.CiphertextHash = tagged.Hash(tagged.MutCiphertext, seg[:len(data)])
	blocks := make([][]byte, p.N)
	for i := range blocks {
		blocks[i] = make([]byte, bs)
	}
	if err := c.Encode(ctx, p, seg, blocks); err != nil {
		return nil, fmt.Errorf("encode mutable version %d: %w", seq, err)
	}
	leaves := make([]hashtree.Hash, p.N)
	for i, b := range blocks {
		leaves[i] = tagged.Hash(tagged.MutBlock, b)
	}
	tree, err := hashtree.Build(tagged.MutShareTreeNode, leaves)
	if err != nil {
		return nil, fmt.Errorf("encode mutable version %d: %w", seq, err)
	}
	h.Root = tree.Root()
	id := h.ID()
	sig := ed25519.Sign(w.SigningKey(), id[:])
	v := &Version{Header: h, Shares: make([][]byte, p.N)}
	pub := w.PublicKey()
	for i := range blocks {
		proof, err := tree.Proof(i)
		if err != nil {
			return nil, fmt.Errorf("encode mutable version %d: %w", seq, err)
		}
		s := Share{PublicKey: pub, Header: h, Num: i, Proof: proof, Block: blocks[i]}
		copy(s.Signature[:], sig)
		v.Shares[i] = s.Marshal()
	}
	return v, nil
}

// Decode rebuilds and decrypts a version from verified shares (Verify)
// that all carry the same header; at least K distinct share numbers are
// needed. The result is checked against the signed ciphertext hash.
func Decode(ctx context.Context, c codec.Codec, r cap.MutableRead, shares []*Share) ([]byte, error) {
	ct, h, err := DecodeCiphertext(ctx, c, shares)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(ct))
	crypt(DataKey(r.ReadKey, h.Salt), out, ct)
	return out, nil
}

// DecodeCiphertext rebuilds a version's ciphertext from verified shares of
// one version and checks it against the signed ciphertext hash. It needs
// no key, so a verify-cap holder can check that every K shares agree.
func DecodeCiphertext(ctx context.Context, c codec.Codec, shares []*Share) ([]byte, *Header, error) {
	if len(shares) == 0 {
		return nil, nil, fmt.Errorf("decode mutable version: %w: no shares", ErrNotEnoughShares)
	}
	h := shares[0].Header
	id := h.ID()
	blocks := make([][]byte, h.N)
	have := 0
	for _, s := range shares {
		if s.Header.ID() != id {
			return nil, nil, fmt.Errorf("decode mutable version %d: share %d is of another version", h.Seq, s.Num)
		}
		if s.Num < 0 || s.Num >= h.N || len(s.Block) != h.BlockSize() {
			return nil, nil, fmt.Errorf("decode mutable version %d: %w: share %d does not fit the header", h.Seq, ErrFormat, s.Num)
		}
		if blocks[s.Num] == nil && have < h.K {
			blocks[s.Num] = append([]byte(nil), s.Block...) // the codec may overwrite
			have++
		}
	}
	if have < h.K {
		return nil, nil, fmt.Errorf("decode mutable version %d: %w: %d distinct shares, %d needed", h.Seq, ErrNotEnoughShares, have, h.K)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("decode mutable version %d: codec: %w", h.Seq, err)
	}
	if info.Name != h.Codec {
		return nil, nil, fmt.Errorf("decode mutable version %d: coded with %q, this client has %q", h.Seq, h.Codec, info.Name)
	}
	seg := make([]byte, h.K*h.BlockSize())
	if err := c.Decode(ctx, h.Params(), blocks, seg); err != nil {
		return nil, nil, fmt.Errorf("decode mutable version %d: %w", h.Seq, err)
	}
	ct := seg[:h.Size]
	if tagged.Hash(tagged.MutCiphertext, ct) != h.CiphertextHash {
		return nil, nil, fmt.Errorf("decode mutable version %d: %w: decoded ciphertext does not match the signed hash", h.Seq, ErrCorrupt)
	}
	return ct, &h, nil
}

// Rebuild makes all N shares of a version again from K or more verified
// shares of it (Verify), as repair needs: it decodes the ciphertext (no
// key needed), codes it again, rebuilds the share tree, and refuses unless
// the root is the signed one (the codec must be deterministic). The
// rebuilt shares carry the original signature, so they are byte-identical
// to what the writer made, and servers take them in place of missing,
// older or corrupt ones.
func Rebuild(ctx context.Context, c codec.Codec, shares []*Share) ([][]byte, error) {
	ct, h, err := DecodeCiphertext(ctx, c, shares)
	if err != nil {
		return nil, err
	}
	bs := h.BlockSize()
	seg := make([]byte, h.K*bs)
	copy(seg, ct)
	blocks := make([][]byte, h.N)
	for i := range blocks {
		blocks[i] = make([]byte, bs)
	}
	if err := c.Encode(ctx, h.Params(), seg, blocks); err != nil {
		return nil, fmt.Errorf("rebuild mutable version %d: %w", h.Seq, err)
	}
	leaves := make([]hashtree.Hash, h.N)
	for i, b := range blocks {
		leaves[i] = tagged.Hash(tagged.MutBlock, b)
	}
	tree, err := hashtree.Build(tagged.MutShareTreeNode, leaves)
	if err != nil {
		return nil, fmt.Errorf("rebuild mutable version %d: %w", h.Seq, err)
	}
	if tree.Root() != h.Root {
		return nil, fmt.Errorf("rebuild mutable version %d: %w: coding again gives another share tree root (codec not deterministic?)", h.Seq, ErrCorrupt)
	}
	out := make([][]byte, h.N)
	for i := range blocks {
		proof, err := tree.Proof(i)
		if err != nil {
			return nil, fmt.Errorf("rebuild mutable version %d: %w", h.Seq, err)
		}
		s := Share{PublicKey: shares[0].PublicKey, Header: *h, Signature: shares[0].Signature, Num: i, Proof: proof, Block: blocks[i]}
		out[i] = s.Marshal()
	}
	return out, nil
}
