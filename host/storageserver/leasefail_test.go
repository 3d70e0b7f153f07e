package storageserver

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// TestPutFailsWhenLeaseCommitFails: a put whose lease record cannot be
// committed (the lease db closed under the server, so bbolt refuses the
// transaction) is not answered as stored: PutShares fails, and
// PutSharesBatch answers that put with an error code, each saying the
// shares stay stored without a lease. Unanswered, a share without a
// durable lease could be collected early with storage.gc on.
func TestPutFailsWhenLeaseCommitFails(t *testing.T) {
	cases := []struct {
		name string
		put  func(ctx context.Context, cl pb.StorageServerClient, req *pb.PutSharesRequest) (codes.Code, string)
	}{
		{"put shares", func(ctx context.Context, cl pb.StorageServerClient, req *pb.PutSharesRequest) (codes.Code, string) {
			_, err := cl.PutShares(ctx, req)
			st := status.Convert(err)
			return st.Code(), st.Message()
		}},
		{"put shares batch", func(ctx context.Context, cl pb.StorageServerClient, req *pb.PutSharesRequest) (codes.Code, string) {
			r, err := cl.PutSharesBatch(ctx, &pb.PutSharesBatchRequest{Puts: []*pb.PutSharesRequest{req}})
			if err != nil {
				st := status.Convert(err)
				return st.Code(), "whole call: " + st.Message()
			}
			if len(r.Results) != 1 {
				return codes.Unknown, "results: " + r.String()
			}
			return codes.Code(r.Results[0].Code), r.Results[0].Message
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, srv := rawClient(t, Config{LeasePath: filepath.Join(t.TempDir(), "leases.db")})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A put with the lease db working is answered as stored.
			ok := bytes.Repeat([]byte{1}, storage.StorageIndexSize)
			if code, msg := tc.put(ctx, cl, putReq(ok, 100, 0, 1)); code != codes.OK {
				t.Fatalf("put with a working lease db: %v %s", code, msg)
			}
			// Make every later lease commit fail.
			if err := srv.leases.(*boltLeases).db.Close(); err != nil {
				t.Fatal(err)
			}
			bad := bytes.Repeat([]byte{2}, storage.StorageIndexSize)
			code, msg := tc.put(ctx, cl, putReq(bad, 100, 0, 1))
			if code == codes.OK {
				t.Fatal("put answered as stored though its lease commit failed")
			}
			if !strings.Contains(msg, "lease not committed") || !strings.Contains(msg, "stay stored") {
				t.Fatalf("error %v %q does not say the lease failed and the shares stay stored", code, msg)
			}
			// The shares stay stored: a retry finds them already held,
			// and still fails while its lease cannot be committed.
			if _, err := srv.cfg.Backend.Stat(ctx, storage.Ref{Index: [16]byte(bad), Num: 1}); err != nil {
				t.Fatalf("share of the failed put: %v", err)
			}
			if code, msg := tc.put(ctx, cl, putReq(bad, 100, 0, 1)); code == codes.OK {
				t.Fatalf("retry answered %v %s with the lease db still failing", code, msg)
			}
		})
	}
}
