// Command codec-replica is an example third-party tarn codec plugin: plain
// replication, where each of the N blocks is a whole copy of the segment, so
// any one block rebuilds it (K is always 1).
//
// It imports only tarn's public sdk/ packages, as any outside plugin would.
// Build it, pin its SHA-256 in a node profile and tarn loads it like a
// built-in codec:
//
//	go build -o codec-replica ./sdk/examples/codec-replica
//	sha256sum codec-replica
package main

import (
	"context"
	"fmt"

	"github.com/tarnfs/tarn/sdk/codec"
)

// Replica is the replication codec. It keeps no state.
type Replica struct{}

var _ codec.Codec = Replica{}

// Info names the codec.
func (Replica) Info(context.Context) (codec.Info, error) {
	return codec.Info{Name: "replica", Version: "1.0.0", MaxN: codec.MaxShares}, nil
}

// checkK refuses what replication cannot do, naming the fix.
func checkK(p codec.Params) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("replica: %w: %v", codec.ErrInvalidInput, err)
	}
	if p.K != 1 {
		return fmt.Errorf("replica: K=%d: every block is a whole copy, so K must be 1 (use K=1 N=%d): %w", p.K, p.N, codec.ErrUnsupported)
	}
	return nil
}

// Encode copies the segment into every block (with K=1 a block is exactly
// as long as the segment).
func (Replica) Encode(_ context.Context, p codec.Params, segment []byte, blocks [][]byte) error {
	if err := checkK(p); err != nil {
		return err
	}
	if err := codec.CheckEncode(p, segment, blocks); err != nil {
		return fmt.Errorf("replica encode: %w", err)
	}
	for _, b := range blocks {
		copy(b, segment)
	}
	return nil
}

// Decode copies the first present block.
func (Replica) Decode(_ context.Context, p codec.Params, blocks [][]byte, out []byte) error {
	if err := checkK(p); err != nil {
		return err
	}
	if err := codec.CheckDecode(p, blocks, out); err != nil {
		return fmt.Errorf("replica decode: %w", err)
	}
	for _, b := range blocks {
		if b != nil {
			copy(out, b)
			return nil
		}
	}
	return codec.ErrTooFewBlocks // unreachable: CheckDecode counted them
}

func main() {
	codec.Serve(Replica{})
}
