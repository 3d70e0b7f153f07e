package storageserver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPutSharesErrorsNameTheIndex: a refused PutShares says which call
// it was ("put shares of <index in hex>: ...") and why.
func TestPutSharesErrorsNameTheIndex(t *testing.T) {
	cl, _ := rawClient(t, Config{})
	idx := bytes.Repeat([]byte{0xab}, storage.StorageIndexSize)
	prefix := fmt.Sprintf("put shares of %x: ", idx)
	cases := []struct {
		name string
		mod  func(r *pb.PutSharesRequest)
		why  string
	}{
		{"no shares", func(r *pb.PutSharesRequest) { r.Shares = nil }, "0 shares"},
		{"twice", func(r *pb.PutSharesRequest) { r.Shares = append(r.Shares, r.Shares[0]) }, "given twice"},
		{"short share", func(r *pb.PutSharesRequest) { r.Shares[0].Data = r.Shares[0].Data[:3] }, "has 3 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := putReq(idx, 10, 0, 1)
			tc.mod(req)
			_, err := cl.PutShares(context.Background(), req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), prefix) || !strings.Contains(st.Message(), tc.why) {
				t.Fatalf("error %v, want InvalidArgument %q...%q", err, prefix, tc.why)
			}
		})
	}
}
