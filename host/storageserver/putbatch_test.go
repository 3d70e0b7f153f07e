package storageserver

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPutSharesBatch: each put of a batch is answered in order with what
// PutShares alone answers (stored, already held, or its own error), the
// stored shares are leased; a batch of no puts, too many or too many
// bytes is refused whole.
func TestPutSharesBatch(t *testing.T) {
	cl, srv := rawClient(t, Config{})
	ctx := context.Background()
	idx := func(b byte) []byte { return bytes.Repeat([]byte{b}, storage.StorageIndexSize) }
	if _, err := cl.PutShares(ctx, putReq(idx(2), 10, 1)); err != nil {
		t.Fatal(err)
	}
	bad := putReq(idx(3), 10, 0)
	bad.Shares[0].Data = bad.Shares[0].Data[:4]
	r, err := cl.PutSharesBatch(ctx, &pb.PutSharesBatchRequest{Puts: []*pb.PutSharesRequest{
		putReq(idx(1), 10, 0, 2), putReq(idx(2), 10, 1), bad, putReq(idx(4), 20, 3),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range r.Results {
		if res.Code != 0 {
			got = append(got, fmt.Sprintf("%v", codes.Code(res.Code)))
			continue
		}
		got = append(got, fmt.Sprint(res.Response.Stored, res.Response.AlreadyHave))
	}
	if fmt.Sprint(got) != "[[0 2] [] [] [1] InvalidArgument [3] []]" {
		t.Fatalf("batch answered %v", got)
	}
	if msg := r.Results[2].Message; !bytes.HasPrefix([]byte(msg), []byte(fmt.Sprintf("put shares of %x: share 0 has 4 bytes", idx(3)))) {
		t.Fatalf("refused put's message %q", msg)
	}
	for _, b := range []byte{1, 2, 4} {
		if ls, err := srv.Leases([16]byte(idx(b))); err != nil || len(ls) != 1 {
			t.Fatalf("leases of index %d: %v %v", b, ls, err)
		}
	}
	if ls, _ := srv.Leases([16]byte(idx(3))); len(ls) != 0 {
		t.Fatalf("the refused put leased its index: %v", ls)
	}
	many := make([]*pb.PutSharesRequest, MaxPutsPerBatch+1)
	for i := range many {
		many[i] = putReq(idx(byte(10+i)), 1, 0)
	}
	for _, tc := range []struct {
		name string
		puts []*pb.PutSharesRequest
	}{
		{"none", nil},
		{"too many", many},
		{"too many bytes", []*pb.PutSharesRequest{putReq(idx(5), 520<<10, 0), putReq(idx(6), 520<<10, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.PutSharesBatch(ctx, &pb.PutSharesBatchRequest{Puts: tc.puts})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("batch: %v, want InvalidArgument", err)
			}
		})
	}
}
