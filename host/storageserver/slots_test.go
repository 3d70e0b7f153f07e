package storageserver

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	storagememory "github.com/tarnfs/tarn/plugins/storage-memory"
	"github.com/tarnfs/tarn/sdk/storage"
)

// oldBackend is a backend plugin built before ListSlots existed.
type oldBackend struct{ storage.Backend }

func (oldBackend) ListSlots(context.Context, [storage.StorageIndexSize]byte) ([]uint32, error) {
	return nil, errors.ErrUnsupported
}

// TestListSlots: over real TLS, ListSlots names the slots written at an
// index and nothing else; bad input and an old backend get clear codes.
func TestListSlots(t *testing.T) {
	c, _ := rawClient(t, Config{})
	ctx := context.Background()
	idx := make([]byte, 16)
	idx[0] = 7
	lease := make([]byte, 32)
	for _, n := range []uint32{4, 0, 9} {
		if _, err := c.WriteSlot(ctx, &pb.WriteSlotRequest{StorageIndex: idx, SlotNum: n, Value: []byte("v"), LeaseSecret: lease}); err != nil {
			t.Fatal(err)
		}
	}
	other := make([]byte, 16)
	tests := []struct {
		name  string
		index []byte
		want  []uint32
		code  codes.Code
	}{
		{"three slots", idx, []uint32{0, 4, 9}, codes.OK},
		{"unknown index", other, nil, codes.OK},
		{"short index", []byte{1, 2}, nil, codes.InvalidArgument},
		{"no index", nil, nil, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.ListSlots(ctx, &pb.ListSlotsRequest{StorageIndex: tc.index})
			if status.Code(err) != tc.code {
				t.Fatalf("ListSlots: %v, want code %v", err, tc.code)
			}
			if err == nil && !slices.Equal(r.SlotNums, tc.want) {
				t.Fatalf("ListSlots = %v, want %v", r.SlotNums, tc.want)
			}
		})
	}
	t.Run("old backend", func(t *testing.T) {
		old, _ := rawClient(t, Config{Backend: oldBackend{storagememory.New()}})
		_, err := old.ListSlots(ctx, &pb.ListSlotsRequest{StorageIndex: idx})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("ListSlots over a backend without it: %v, want Unimplemented", err)
		}
	})
}
