package chk

import (
	"context"
	"fmt"
	"slices"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/host/hashtree"
	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

// Repairer rebuilds lost or corrupt shares of a file from its good shares,
// with only the verify cap: it decodes each segment's ciphertext from K verified
// blocks (never decrypting), codes it again, and writes the rebuilt
// shares' blocks, trees, proof, UEB and header, every byte the same as the
// original encoder wrote.
type Repairer struct {
	v       cap.CHKVerify
	cd      codec.Codec
	d       *Decoder
	rebuild []int
}

// NewRepairer finds a valid extension block among the shares not in
// rebuild (those are never read) and prepares to rebuild those shares.
// Problems with the source shares are reported through opt as in a download.
func NewRepairer(ctx context.Context, v cap.CHKVerify, cd codec.Codec, src ShareSource, rebuild []int, opt *Options) (*Repairer, error) {
	if len(rebuild) == 0 {
		return nil, fmt.Errorf("repair %s: no shares to rebuild", v.StorageIndex)
	}
	want := map[int]bool{}
	for _, s := range rebuild {
		if s < 0 || s >= v.N || want[s] {
			return nil, fmt.Errorf("repair %s: share %d named twice or out of 0..%d", v.StorageIndex, s, v.N-1)
		}
		want[s] = true
	}
	o := Options{}
	if opt != nil {
		o = *opt
	}
	if o.Shares == nil {
		for s := 0; s < v.N; s++ {
			o.Shares = append(o.Shares, s)
		}
	}
	o.Shares = slices.DeleteFunc(slices.Clone(o.Shares), func(s int) bool { return want[s] })
	d, err := newDecoder(ctx, v, nil, cd, src, &o)
	if err != nil {
		return nil, fmt.Errorf("repair %s: %w", v.StorageIndex, err)
	}
	return &Repairer{v: v, cd: cd, d: d, rebuild: slices.Clone(rebuild)}, nil
}

// ShareSize is the size of each rebuilt share (for storage Create).
func (r *Repairer) ShareSize() int64 { return r.d.l.ShareSize }

// Problems lists the source shares that failed so far.
func (r *Repairer) Problems() []Problem { return r.d.Problems() }

// Run writes the rebuilt shares through sink. At the end it checks the
// rebuilt block trees against the share hash tree of the extension block;
// on any error the caller must discard (not seal) what sink received.
func (r *Repairer) Run(ctx context.Context, sink ShareSink) error {
	v, cd, d, rebuild := r.v, r.cd, r.d, r.rebuild
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.release()
	var err error
	l := d.l
	leaves := make([][]hashtree.Hash, l.N)
	cipher := make([]hashtree.Hash, 0, l.Segments)
	blocks := make([][]byte, l.N)
	for s := range blocks {
		blocks[s] = make([]byte, l.BlockSize)
	}
	for i := 0; i < l.Segments; i++ {
		ct, err := d.cipherSegment(ctx, i)
		if err != nil {
			return fmt.Errorf("repair %s: %w", v.StorageIndex, err)
		}
		cipher = append(cipher, tagged.Hash(tagged.ChkSegment, ct))
		off, n := l.Block(i)
		bl := make([][]byte, l.N)
		for s := range bl {
			bl[s] = blocks[s][:n]
		}
		if err := cd.Encode(ctx, l.codec(), ct, bl); err != nil {
			return fmt.Errorf("repair %s: segment %d: %w", v.StorageIndex, i, err)
		}
		for s := range bl {
			leaves[s] = append(leaves[s], tagged.Hash(tagged.ChkBlock, bl[s]))
		}
		for _, s := range rebuild {
			if err := sink.WriteAt(ctx, s, bl[s], off); err != nil {
				return fmt.Errorf("repair %s: write block %d of share %d: %w", v.StorageIndex, i, s, err)
			}
		}
	}
	roots := make([]hashtree.Hash, l.N)
	btrees := make([]*hashtree.Tree, l.N)
	for s := range roots {
		if btrees[s], err = hashtree.Build(tagged.ChkBlockTreeNode, leaves[s]); err != nil {
			return err
		}
		roots[s] = btrees[s].Root()
	}
	st, err := hashtree.Build(tagged.ChkShareTreeNode, roots)
	if err != nil {
		return err
	}
	if st.Root() != d.ueb.ShareRoot {
		return fmt.Errorf("repair %s: re-coded blocks do not match the share hash tree (codec %s differs from the one that wrote the file?): %w",
			v.StorageIndex, d.ueb.Codec, ErrCorrupt)
	}
	ct, err := hashtree.Build(tagged.ChkCiphertextNode, cipher)
	if err != nil {
		return err
	}
	if ct.Root() != d.ueb.CiphertextRoot {
		return fmt.Errorf("repair %s: ciphertext tree differs from the extension block's: %w", v.StorageIndex, ErrCorrupt)
	}
	buf := make([]byte, l.BlocksOffset)
	ctBytes := ct.Bytes()
	for _, s := range rebuild {
		copy(buf, l.Header(s).Marshal())
		copy(buf[l.UEBOffset:], d.uebBytes)
		proof, err := st.Proof(s)
		if err != nil {
			return err
		}
		for j, h := range proof {
			copy(buf[l.ProofOffset+int64(j)*tagged.Size:], h[:])
		}
		copy(buf[l.BlockTreeOffset:], btrees[s].Bytes())
		copy(buf[l.CipherOffset:], ctBytes)
		if err := sink.WriteAt(ctx, s, buf, 0); err != nil {
			return fmt.Errorf("repair %s: write header and trees of share %d: %w", v.StorageIndex, s, err)
		}
	}
	return nil
}
