package chk

import (
	"bytes"
	"context"
	"testing"
	"unsafe"

	"github.com/tarnfs/tarn/host/cap"
	"github.com/tarnfs/tarn/sdk/codec"
)

// TestAliasedBlocks: with the data blocks laid over the segment (the
// default for the built-in codec) the encoder makes byte for byte the
// shares and cap it makes with separate buffers, in process and through
// the codec's shared memory, for files whose last segment is short and
// files smaller than K (data blocks that are all padding).
func TestAliasedBlocks(t *testing.T) {
	p := Params{K: 3, N: 5, SegmentSize: 1 << 16}
	shared, _, _ := sharedCodec(t, 16<<20)
	for _, tc := range []struct {
		name  string
		size  int
		codec codec.Codec
	}{
		{"in process, smaller than K", 2, rs},
		{"in process, one short segment", 1000, rs},
		{"in process, short last segment", 5*(1<<16) + 1001, rs},
		{"in process, whole segments", 4 * (1 << 16), rs},
		{"shared, smaller than K", 2, shared},
		{"shared, one short segment", 1000, shared},
		{"shared, short last segment", 5*(1<<16) + 1001, shared},
		{"shared, last segment of one byte", 3*(1<<16) + 1, shared},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := content(tc.size, uint64(tc.size)+5)
			key := testKey(11)
			run := func(alias bool) (cap.CHK, *MemShares) {
				old := aliasBlocks
				aliasBlocks = alias
				defer func() { aliasBlocks = old }()
				size, err := ShareSize(p, int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				m := NewMemShares(p.N, size)
				e, err := NewEncoder(context.Background(), p, key, int64(len(data)), tc.codec, m)
				if err != nil {
					t.Fatal(err)
				}
				j := e.cur
				aliased := j.region != nil && unsafe.SliceData(j.blocks[0]) == unsafe.SliceData(j.seg)
				if aliased != alias {
					t.Fatalf("aliasBlocks %v: the first job's data blocks over its segment: %v", alias, aliased)
				}
				if tc.codec == shared && (j.bufs == nil || !j.bufs.Shared()) {
					t.Fatal("the encoder's buffers are not in shared memory")
				}
				// Garbage where padding goes: the codec must zero it.
				if j.region != nil {
					for i := len(j.seg); i < len(j.region); i++ {
						j.region[i] = 0xa5
					}
				}
				if _, err := e.ReadFrom(bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				c, err := e.Close()
				if err != nil {
					t.Fatal(err)
				}
				return c, m
			}
			wantCap, want := run(false)
			gotCap, got := run(true)
			if gotCap != wantCap {
				t.Fatalf("cap %v aliased, %v not", gotCap, wantCap)
			}
			for s := range want.Shares {
				if !bytes.Equal(got.Shares[s], want.Shares[s]) {
					t.Fatalf("share %d differs", s)
				}
			}
			back, _, err := decodeAll(t, gotCap, got, nil)
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("decode: %v, %d bytes back of %d", err, len(back), len(data))
			}
		})
	}
}
