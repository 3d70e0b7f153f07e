package codec

import (
	"context"
	"fmt"
)

// CheckEncode checks Encode's arguments against the contract: valid
// parameters, a non-empty segment, exactly N blocks of BlockSize bytes each.
// Codec implementations call it first so that bad input is an error, never a
// panic; the errors wrap ErrInvalidInput.
func CheckEncode(p Params, segment []byte, blocks [][]byte) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if len(segment) == 0 {
		return fmt.Errorf("%w: encode of an empty segment", ErrInvalidInput)
	}
	if len(blocks) != p.N {
		return fmt.Errorf("%w: encode into %d blocks, want N=%d", ErrInvalidInput, len(blocks), p.N)
	}
	bs := BlockSize(p, len(segment))
	for i, b := range blocks {
		if len(b) != bs {
			return fmt.Errorf("%w: block %d is %d bytes, want %d for a %d-byte segment with K=%d",
				ErrInvalidInput, i, len(b), bs, len(segment), p.K)
		}
	}
	return nil
}

// CheckDecode checks Decode's arguments: valid parameters, a non-empty out,
// N block entries, every present (non-nil) one BlockSize bytes long, and at
// least K of them (else ErrTooFewBlocks).
func CheckDecode(p Params, blocks [][]byte, out []byte) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if len(out) == 0 {
		return fmt.Errorf("%w: decode into an empty segment", ErrInvalidInput)
	}
	if len(blocks) != p.N {
		return fmt.Errorf("%w: decode from %d block entries, want N=%d", ErrInvalidInput, len(blocks), p.N)
	}
	bs := BlockSize(p, len(out))
	present := 0
	for i, b := range blocks {
		if b == nil {
			continue
		}
		if len(b) != bs {
			return fmt.Errorf("%w: block %d is %d bytes, want %d for a %d-byte segment with K=%d",
				ErrInvalidInput, i, len(b), bs, len(out), p.K)
		}
		present++
	}
	if present < p.K {
		return fmt.Errorf("decode %d-byte segment: %d of %d blocks present, need K=%d: %w",
			len(out), present, p.N, p.K, ErrTooFewBlocks)
	}
	return nil
}

// EncodeJob is one segment of a batch: Blocks are its N output blocks.
type EncodeJob struct {
	Segment []byte
	Blocks  [][]byte
}

// DecodeJob is one segment of a batch: Blocks as for Decode, Out the segment.
type DecodeJob struct {
	Blocks [][]byte
	Out    []byte
}

// BatchCodec is an optional extra of a Codec: several segments per call.
// The host's RPC client implements it so that a pipeline pays one round trip
// per batch rather than per segment. A batch fails as a whole; its error
// names the failing segment and wraps the sentinel errors.
type BatchCodec interface {
	EncodeBatch(ctx context.Context, p Params, jobs []EncodeJob) error
	DecodeBatch(ctx context.Context, p Params, jobs []DecodeJob) error
}

// EncodeBatch encodes jobs with c's EncodeBatch when it has one, otherwise
// one Encode per job.
func EncodeBatch(ctx context.Context, c Codec, p Params, jobs []EncodeJob) error {
	if bc, ok := c.(BatchCodec); ok {
		return bc.EncodeBatch(ctx, p, jobs)
	}
	for i, j := range jobs {
		if err := c.Encode(ctx, p, j.Segment, j.Blocks); err != nil {
			return fmt.Errorf("segment %d of batch: %w", i, err)
		}
	}
	return nil
}

// DecodeBatch decodes jobs with c's DecodeBatch when it has one, otherwise
// one Decode per job.
func DecodeBatch(ctx context.Context, c Codec, p Params, jobs []DecodeJob) error {
	if bc, ok := c.(BatchCodec); ok {
		return bc.DecodeBatch(ctx, p, jobs)
	}
	for i, j := range jobs {
		if err := c.Decode(ctx, p, j.Blocks, j.Out); err != nil {
			return fmt.Errorf("segment %d of batch: %w", i, err)
		}
	}
	return nil
}
