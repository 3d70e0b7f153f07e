package chk

import (
	"context"
	"fmt"
	"io"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
)

// VerifyShare checks every byte of share shnum with only the verify cap
// (no read key): header, extension block against the cap, the share-tree
// proof, the whole block hash tree, the whole ciphertext hash tree, and
// every block. It is what `check --verify` runs per share. A failure is a
// Problem (wrapping ErrCorrupt when the bytes are wrong rather than
// unreadable). Memory is the trees plus one block.
func VerifyShare(ctx context.Context, v cap.CHKVerify, src ShareSource, shnum int) error {
	fail := func(seg int, what string, err error) error {
		return Problem{Share: shnum, Segment: seg, What: what, Err: err}
	}
	if shnum < 0 || shnum >= v.N {
		return fail(-1, "share number", fmt.Errorf("out of 0..%d", v.N-1))
	}
	read := func(p []byte, off int64) error {
		n, err := src.ReadAt(ctx, shnum, p, off)
		if n == len(p) {
			return nil
		}
		if err == nil || err == io.EOF {
			return fmt.Errorf("short read: %d of %d bytes at %d: %w", n, len(p), off, ErrCorrupt)
		}
		return err
	}
	head := make([]byte, HeaderSize+UEBSize)
	if err := read(head, 0); err != nil {
		return fail(-1, "read", err)
	}
	h, err := ParseHeader(head)
	if err != nil {
		return fail(-1, "header", err)
	}
	raw := head[HeaderSize:]
	if tagged.Hash(tagged.ChkUEB, raw) != v.UEBHash {
		return fail(-1, "extension block", fmt.Errorf("hash does not match the cap: %w", ErrCorrupt))
	}
	u, err := ParseUEB(raw)
	if err == nil && (u.K != v.K || u.N != v.N || u.Size != v.Size) {
		err = fmt.Errorf("parameters differ from the cap's: %w", ErrCorrupt)
	}
	if err != nil {
		return fail(-1, "extension block", err)
	}
	l, err := NewLayout(u.Params(), u.Size)
	if err != nil {
		return fail(-1, "extension block", fmt.Errorf("%v: %w", err, ErrCorrupt))
	}
	if h != l.Header(shnum) {
		return fail(-1, "header", fmt.Errorf("does not match the layout of the extension block: %w", ErrCorrupt))
	}
	rest := make([]byte, l.BlocksOffset-l.ProofOffset)
	if err := read(rest, l.ProofOffset); err != nil {
		return fail(-1, "read", err)
	}
	at := func(off int64) []byte { return rest[off-l.ProofOffset:] }
	treeLen := l.CipherOffset - l.BlockTreeOffset
	btree := at(l.BlockTreeOffset)[:treeLen]
	var root hashtree.Hash
	copy(root[:], btree)
	proof := make([]hashtree.Hash, hashtree.Depth(l.N))
	for j := range proof {
		copy(proof[j][:], at(l.ProofOffset+int64(j)*tagged.Size))
	}
	if err := hashtree.VerifyProof(tagged.ChkShareTreeNode, u.ShareRoot, l.N, shnum, root, proof); err != nil {
		return fail(-1, "share hash proof", fmt.Errorf("%v: %w", err, ErrCorrupt))
	}
	leaves, err := hashtree.Check(tagged.ChkBlockTreeNode, root, l.Segments, btree)
	if err != nil {
		return fail(-1, "block hash tree", fmt.Errorf("%v: %w", err, ErrCorrupt))
	}
	if _, err := hashtree.Check(tagged.ChkCiphertextNode, u.CiphertextRoot, l.Segments, at(l.CipherOffset)[:treeLen]); err != nil {
		return fail(-1, "ciphertext hash tree", fmt.Errorf("%v: %w", err, ErrCorrupt))
	}
	buf := make([]byte, l.BlockSize)
	for i := 0; i < l.Segments; i++ {
		if err := ctx.Err(); err != nil {
			return fail(i, "read", err)
		}
		off, n := l.Block(i)
		if err := read(buf[:n], off); err != nil {
			return fail(i, "read", err)
		}
		if tagged.Hash(tagged.ChkBlock, buf[:n]) != leaves[i] {
			return fail(i, "block", fmt.Errorf("hash does not match the block hash tree: %w", ErrCorrupt))
		}
	}
	// A share longer than its layout is not what was written.
	var one [1]byte
	if n, _ := src.ReadAt(ctx, shnum, one[:], l.ShareSize); n != 0 {
		return fail(-1, "read", fmt.Errorf("share is longer than %d bytes: %w", l.ShareSize, ErrCorrupt))
	}
	return nil
}
