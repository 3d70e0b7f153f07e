package chk

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tarnfs/tarn/host/cap"
)

func TestRepair(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		p       Params
		size    int
		rebuild []int
		corrupt []int // shares to flip a block byte in (still read, must be skipped)
	}{
		{"one lost", Params{K: 3, N: 10, SegmentSize: 4096}, 9*4096 + 5, []int{4}, nil},
		{"N-K lost", Params{K: 3, N: 6, SegmentSize: 4096}, 3*4096 + 1, []int{0, 2, 5}, nil},
		{"lost and a corrupt source", Params{K: 2, N: 5, SegmentSize: 1000}, 7777, []int{1}, []int{0}},
		{"one segment", Params{K: 3, N: 4, SegmentSize: 1 << 20}, 100, []int{3}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := content(tc.size, uint64(tc.size))
			c, m := encode(t, tc.p, testKey(9), data)
			orig := make([][]byte, tc.p.N)
			for s := range orig {
				orig[s] = append([]byte(nil), m.Shares[s]...)
			}
			for _, s := range tc.rebuild {
				m.Shares[s] = nil
			}
			l := mustLayout(t, tc.p, int64(tc.size))
			for _, s := range tc.corrupt {
				m.Shares[s][l.BlocksOffset] ^= 1
			}
			r, err := NewRepairer(ctx, c.Verify(), rs, m, tc.rebuild, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.ShareSize() != l.ShareSize {
				t.Fatalf("share size %d, want %d", r.ShareSize(), l.ShareSize)
			}
			out := NewMemShares(tc.p.N, r.ShareSize())
			if err := r.Run(ctx, out); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.rebuild {
				if !bytes.Equal(out.Shares[s], orig[s]) {
					t.Fatalf("rebuilt share %d differs from the original", s)
				}
				m.Shares[s] = out.Shares[s]
				if err := VerifyShare(ctx, c.Verify(), m, s); err != nil {
					t.Fatalf("verify rebuilt share %d: %v", s, err)
				}
			}
			if len(r.Problems()) != len(tc.corrupt) {
				t.Fatalf("problems %v, want the corrupt shares %v", r.Problems(), tc.corrupt)
			}
		})
	}
}

func TestRepairErrors(t *testing.T) {
	ctx := context.Background()
	p := Params{K: 3, N: 5, SegmentSize: 4096}
	c, m := encode(t, p, testKey(9), content(10000, 1))
	if _, err := NewRepairer(ctx, c.Verify(), rs, m, nil, nil); err == nil || !strings.Contains(err.Error(), "no shares to rebuild") {
		t.Fatalf("empty rebuild: %v", err)
	}
	if _, err := NewRepairer(ctx, c.Verify(), rs, m, []int{1, 1}, nil); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Fatalf("duplicate: %v", err)
	}
	sub := &MemShares{Shares: [][]byte{m.Shares[0], m.Shares[1], nil, nil, nil}}
	r, err := NewRepairer(ctx, c.Verify(), rs, sub, []int{2, 3, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(ctx, NewMemShares(5, r.ShareSize()))
	if !errors.Is(err, ErrNotEnoughShares) || !strings.Contains(err.Error(), "2 good, 3 needed") {
		t.Fatalf("too few sources: %v", err)
	}
	var v cap.CHKVerify = c.Verify()
	v.UEBHash[0] ^= 1
	if _, err := NewRepairer(ctx, v, rs, m, []int{0}, nil); !errors.Is(err, ErrNotEnoughShares) {
		t.Fatalf("wrong verify cap: %v", err)
	}
}
