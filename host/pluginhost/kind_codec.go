package pluginhost

import (
	"context"
	"fmt"

	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

func init() {
	sentinels = append(sentinels, codec.ErrTooFewBlocks, codec.ErrInvalidInput, codec.ErrUnsupported)
	kinds[pluginkit.KindCodec] = kindDef{
		version:   codec.ProtocolVersion,
		newPlugin: codec.NewHostPlugin,
		check: func(raw any) error {
			if _, ok := raw.(codec.Codec); !ok {
				return fmt.Errorf("dispensed a %T, not a codec", raw)
			}
			return nil
		},
		info: func(ctx context.Context, raw any) (string, error) {
			in, err := raw.(codec.Codec).Info(ctx)
			return in.Version, err
		},
	}
}

// Codec is the supervised codec plugin: each call goes to the current
// process, which is restarted when it has died.
type Codec struct{ s *supervisor }

var _ codec.BatchCodec = (*Codec)(nil)

func (c *Codec) Info(ctx context.Context) (codec.Info, error) {
	var in codec.Info
	err := c.s.call(ctx, func(raw any) (err error) {
		in, err = raw.(codec.Codec).Info(ctx)
		return err
	})
	return in, err
}

func (c *Codec) Encode(ctx context.Context, p codec.Params, segment []byte, blocks [][]byte) error {
	return c.s.call(ctx, func(raw any) error { return raw.(codec.Codec).Encode(ctx, p, segment, blocks) })
}

func (c *Codec) Decode(ctx context.Context, p codec.Params, blocks [][]byte, out []byte) error {
	return c.s.call(ctx, func(raw any) error { return raw.(codec.Codec).Decode(ctx, p, blocks, out) })
}

func (c *Codec) EncodeBatch(ctx context.Context, p codec.Params, jobs []codec.EncodeJob) error {
	return c.s.call(ctx, func(raw any) error { return codec.EncodeBatch(ctx, raw.(codec.Codec), p, jobs) })
}

func (c *Codec) DecodeBatch(ctx context.Context, p codec.Params, jobs []codec.DecodeJob) error {
	return c.s.call(ctx, func(raw any) error { return codec.DecodeBatch(ctx, raw.(codec.Codec), p, jobs) })
}

// AllocBuffers returns buffers for one segment in the current process's
// shared memory when it has some (so Encode and Decode on them copy
// nothing), else on the heap. Buffers outlive a restart: the old process's
// memory stays mapped until they are Released, and calls on them go through
// the new process by copy. Release them when done.
func (c *Codec) AllocBuffers(p codec.Params, segLen int) (*codec.Buffers, error) {
	var b *codec.Buffers
	err := c.s.call(context.Background(), func(raw any) (err error) {
		a, ok := raw.(interface {
			AllocBuffers(codec.Params, int) (*codec.Buffers, error)
		})
		if !ok {
			return fmt.Errorf("%w: %T cannot allocate buffers", codec.ErrUnsupported, raw)
		}
		b, err = a.AllocBuffers(p, segLen)
		return err
	})
	return b, err
}
