// Package codecreedsolomon is tarn's built-in erasure codec: systematic
// Reed-Solomon over GF(2^8) from github.com/klauspost/reedsolomon, any K of N
// up to 256. The first K blocks are the segment itself (zero-padded), so a
// download that has them decodes by copying.
//
// Each encoder runs on the calling goroutine only (WithMaxGoroutines(1)):
// the library's own goroutines slow 1 MiB segments down, and the host gets
// its parallelism from concurrent calls, one per segment.
package codecreedsolomon

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/klauspost/reedsolomon"

	"github.com/tarnfs/tarn/sdk/codec"
)

// Name is the codec's name in profiles and in the built-in registry.
const Name = "reedsolomon"

// Version is this implementation's version, reported by Info.
const Version = "1.0.0"

// Codec is the Reed-Solomon codec. The zero value is not usable; call New.
type Codec struct {
	mu   sync.Mutex
	encs map[codec.Params]reedsolomon.Encoder
	// scratch holds block-sized buffers for the one data block of a decode
	// that does not fit wholly inside the output (the padded last one).
	scratch sync.Pool
}

var (
	_ codec.Codec      = (*Codec)(nil)
	_ codec.BatchCodec = (*Codec)(nil)
)

// New returns a Reed-Solomon codec.
func New() codec.Codec { return newCodec() }

func newCodec() *Codec { return &Codec{encs: make(map[codec.Params]reedsolomon.Encoder)} }

// Serve runs the codec as a plugin process; it is what
// "tarn plugin serve codec reedsolomon" calls.
func Serve() { codec.Serve(New()) }

// Info names the codec.
func (c *Codec) Info(context.Context) (codec.Info, error) {
	return codec.Info{Name: Name, Version: Version, MaxN: codec.MaxShares}, nil
}

// encoder returns the cached encoder for p, building it on first use.
func (c *Codec) encoder(p codec.Params) (reedsolomon.Encoder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.encs[p]; ok {
		return e, nil
	}
	e, err := reedsolomon.New(p.K, p.N-p.K, reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		return nil, fmt.Errorf("reedsolomon %d-of-%d: %w", p.K, p.N, err)
	}
	c.encs[p] = e
	return e, nil
}

// Encode copies the segment into the first K blocks, zero-padding the last,
// and computes the N-K parity blocks. A data block that already is the
// segment's bytes at its place (the block's first byte is the segment's
// byte i*bs: host/chk's encoder lays the data blocks over the segment)
// is not copied; its padding past the segment's end is still zeroed.
// Blocks must not overlap the segment otherwise.
func (c *Codec) Encode(_ context.Context, p codec.Params, segment []byte, blocks [][]byte) error {
	if err := codec.CheckEncode(p, segment, blocks); err != nil {
		return fmt.Errorf("reedsolomon encode: %w", err)
	}
	enc, err := c.encoder(p)
	if err != nil {
		return err
	}
	bs := codec.BlockSize(p, len(segment))
	for i := 0; i < p.K; i++ {
		src := segment[min(i*bs, len(segment)):]
		n := min(len(src), bs)
		if n == 0 || unsafe.SliceData(blocks[i]) != unsafe.SliceData(src) {
			copy(blocks[i], src)
		} // else the block is the segment's own bytes (host/chk lays them so): nothing to copy
		clear(blocks[i][n:])
	}
	if p.N == p.K {
		return nil
	}
	if err := enc.Encode(blocks); err != nil {
		return fmt.Errorf("reedsolomon encode %d-of-%d: %w", p.K, p.N, err)
	}
	return nil
}

// Decode rebuilds the segment. Missing data blocks are reconstructed straight
// into out where they fit, so the only copies are of data blocks that were
// present.
func (c *Codec) Decode(_ context.Context, p codec.Params, blocks [][]byte, out []byte) error {
	if err := codec.CheckDecode(p, blocks, out); err != nil {
		return fmt.Errorf("reedsolomon decode: %w", err)
	}
	bs := codec.BlockSize(p, len(out))
	missing := false
	for i := 0; i < p.K; i++ {
		if blocks[i] == nil {
			missing = true
			break
		}
	}
	if missing {
		enc, err := c.encoder(p)
		if err != nil {
			return err
		}
		// The library fills a missing shard in place when it has the
		// capacity; point it at the segment's own bytes (or scratch).
		shards := make([][]byte, p.N)
		copy(shards, blocks)
		var scratch *[]byte
		for i := 0; i < p.K; i++ {
			if shards[i] != nil {
				continue
			}
			if end := (i + 1) * bs; end <= len(out) {
				shards[i] = out[i*bs : i*bs : end]
			} else {
				scratch = c.getScratch(bs)
				shards[i] = (*scratch)[:0:bs]
			}
		}
		defer func() {
			if scratch != nil {
				c.scratch.Put(scratch)
			}
		}()
		if err := enc.ReconstructData(shards); err != nil {
			return fmt.Errorf("reedsolomon decode %d-of-%d: %w", p.K, p.N, err)
		}
		blocks = shards
	}
	for i := 0; i < p.K; i++ {
		start := i * bs
		if start >= len(out) {
			break
		}
		dst := out[start:min(start+bs, len(out))]
		if &dst[0] != &blocks[i][0] { // not reconstructed in place
			copy(dst, blocks[i])
		}
	}
	return nil
}

func (c *Codec) getScratch(n int) *[]byte {
	if b, ok := c.scratch.Get().(*[]byte); ok && cap(*b) >= n {
		return b
	}
	b := make([]byte, n)
	return &b
}

// EncodeBatch encodes the segments one after another.
func (c *Codec) EncodeBatch(ctx context.Context, p codec.Params, jobs []codec.EncodeJob) error {
	for i, j := range jobs {
		if err := c.Encode(ctx, p, j.Segment, j.Blocks); err != nil {
			return fmt.Errorf("segment %d of batch: %w", i, err)
		}
	}
	return nil
}

// DecodeBatch decodes the segments one after another.
func (c *Codec) DecodeBatch(ctx context.Context, p codec.Params, jobs []codec.DecodeJob) error {
	for i, j := range jobs {
		if err := c.Decode(ctx, p, j.Blocks, j.Out); err != nil {
			return fmt.Errorf("segment %d of batch: %w", i, err)
		}
	}
	return nil
}
