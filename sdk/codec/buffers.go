package codec

import (
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/sdk/dataplane"
)

// Buffers are a segment and its N blocks laid out for a codec client. When
// the plugin shares an arena with the host they lie inside it, so Encode and
// Decode on them send offsets only and copy nothing; otherwise they are
// plain heap memory and the call streams as usual. Either way they work with
// every Client call.
//
// A pipeline that wants the zero-copy path fills Segment (to encode) or the
// blocks it has (to decode) in place, calls the codec, reads the result in
// place, and Releases the buffers when done (or reuses them for the next
// segment of the same size).
type Buffers struct {
	Segment []byte   // the segment, len = the segment length
	Blocks  [][]byte // N blocks, each BlockSize bytes

	client *Client // set when the buffers lie in its arena
	region dataplane.Region
}

// Shared reports whether the buffers lie in shared memory.
func (b *Buffers) Shared() bool { return b.client != nil }

// Release returns shared buffers to the arena. The slices must not be used
// afterwards. Releasing twice, or heap buffers, is harmless.
func (b *Buffers) Release() {
	if b.client != nil {
		b.client.freeRegion(b.region)
		b.client = nil
	}
	b.Segment, b.Blocks = nil, nil
}

// AllocBuffers returns buffers for one segment of segLen bytes under p: in
// the arena when there is one with room, else on the heap. It fails only on
// bad arguments.
func (c *Client) AllocBuffers(p Params, segLen int) (*Buffers, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if segLen <= 0 {
		return nil, fmt.Errorf("%w: buffers for a %d-byte segment", ErrInvalidInput, segLen)
	}
	bs := BlockSize(p, segLen)
	seg := alignUp(segLen)
	blk := alignUp(bs)
	total := seg + p.N*blk
	b := &Buffers{Blocks: make([][]byte, p.N)}
	var mem []byte
	if c.arena != nil {
		r, err := c.arena.Alloc(total)
		switch {
		case err == nil:
			b.client, b.region, mem = c, r, r.Bytes
		case errors.Is(err, dataplane.ErrArenaFull), errors.Is(err, dataplane.ErrClosed):
			// Heap buffers still work; their calls copy or stream.
		default:
			return nil, fmt.Errorf("codec buffers for a %d-byte segment: %w", segLen, err)
		}
	}
	if mem == nil {
		mem = make([]byte, total)
	}
	b.Segment = mem[:segLen:segLen]
	for i := range b.Blocks {
		o := seg + i*blk
		b.Blocks[i] = mem[o : o+bs : o+bs]
	}
	return b, nil
}
