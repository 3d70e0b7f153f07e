package storageclient

import (
	"errors"
	"slices"
	"testing"

	"github.com/tarnfs/tarn/host/nodelink"
	"github.com/tarnfs/tarn/host/storageserver"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestListSlots: ListSlots lists what WriteSlot made, needs membership
// unless the server has open reads, and is apart from immutable shares.
func TestListSlots(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name      string
		openReads bool
		member    bool
		ok        bool
	}{
		{"member", false, true, true},
		{"no proof", false, false, false},
		{"no proof, open reads", true, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, storageserver.Config{OpenReads: tc.openReads}, false)
			w := ts.dial(t, ts.secret, Options{})
			idx := randIndex()
			for _, n := range []uint32{3, 1} {
				if _, err := w.WriteSlot(ctx, storage.Ref{Index: idx, Num: n}, "", []byte("v"), randBytes(32)); err != nil {
					t.Fatal(err)
				}
			}
			var secret []byte
			if tc.member {
				secret = ts.secret
			}
			c := ts.dial(t, secret, Options{})
			got, err := c.ListSlots(ctx, idx)
			if !tc.ok {
				if !errors.Is(err, nodelink.ErrNotMember) {
					t.Fatalf("ListSlots without proof: %v, want ErrNotMember", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, []uint32{1, 3}) {
				t.Fatalf("ListSlots = %v, %v; want [1 3]", got, err)
			}
			if got, err := c.ListSlots(ctx, randIndex()); err != nil || got == nil || len(got) != 0 {
				t.Fatalf("ListSlots of an unknown index = %#v, %v; want an empty list", got, err)
			}
			if shares, err := c.List(ctx, idx); err != nil || len(shares) != 0 {
				t.Fatalf("slots listed as shares: %v, %v", shares, err)
			}
		})
	}
}
