package codecreedsolomon

import (
	"testing"

	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/codec/codectest"
)

func TestConformanceInProcess(t *testing.T) {
	codectest.Run(t, func(*testing.T) codec.Codec { return New() })
}
