// Command codec-v2 is a codec plugin that speaks a major version of the
// codec protocol this tarn does not: the acceptance suite loads it to see
// the host refuse it with a message naming both versions. It codes nothing.
package main

import (
	"context"
	"errors"

	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

type future struct{}

var _ codec.Codec = future{}

var errNever = errors.New("codec-v2 codes nothing")

func (future) Info(context.Context) (codec.Info, error) { return codec.Info{}, errNever }

func (future) Encode(context.Context, codec.Params, []byte, [][]byte) error { return errNever }

func (future) Decode(context.Context, codec.Params, [][]byte, []byte) error { return errNever }

func main() {
	pluginkit.Serve(pluginkit.ServeConfig{
		Kind:    pluginkit.KindCodec,
		Version: codec.ProtocolVersion + 1,
		Plugin:  &codec.GRPCPlugin{Impl: future{}},
	})
}
