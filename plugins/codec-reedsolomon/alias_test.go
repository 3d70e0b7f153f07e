package codecreedsolomon

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tarnfs/tarn/sdk/codec"
)

// TestEncodeAliased: data blocks laid over the segment (as host/chk's
// encoder lays them) give the blocks separate buffers give, with the
// padding zeroed whatever was there, for segments of every remainder
// modulo K and ones shorter than K.
func TestEncodeAliased(t *testing.T) {
	c := New()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		p    codec.Params
		seg  int
	}{
		{"3-of-5 exact", codec.Params{K: 3, N: 5}, 3 * 1000},
		{"3-of-5 remainder 1", codec.Params{K: 3, N: 5}, 3*1000 + 1},
		{"3-of-5 remainder 2", codec.Params{K: 3, N: 5}, 3*1000 + 2},
		{"3-of-5 one byte", codec.Params{K: 3, N: 5}, 1},
		{"3-of-10 two bytes", codec.Params{K: 3, N: 10}, 2},
		{"7-of-9 1 MiB", codec.Params{K: 7, N: 9}, 1 << 20},
		{"2-of-2 no parity", codec.Params{K: 2, N: 2}, 999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := make([]byte, tc.seg)
			rand.NewChaCha8([32]byte{byte(tc.seg)}).Read(seg)
			bs := codec.BlockSize(tc.p, tc.seg)
			want := make([][]byte, tc.p.N)
			for i := range want {
				want[i] = bytes.Repeat([]byte{0x5a}, bs)
			}
			if err := c.Encode(ctx, tc.p, seg, want); err != nil {
				t.Fatal(err)
			}
			region := bytes.Repeat([]byte{0xa5}, tc.p.N*bs) // garbage in the padding
			copy(region, seg)
			blocks := make([][]byte, tc.p.N)
			for i := range blocks {
				blocks[i] = region[i*bs : (i+1)*bs : (i+1)*bs]
			}
			if err := c.Encode(ctx, tc.p, region[:tc.seg], blocks); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !bytes.Equal(blocks[i], want[i]) {
					t.Fatalf("block %d differs from the one separate buffers got", i)
				}
			}
		})
	}
}
