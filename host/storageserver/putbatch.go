package storageserver

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
)

// MaxPutsPerBatch is the most puts one PutSharesBatch carries.
const MaxPutsPerBatch = 64

// PutSharesBatch does each put of a batch as PutShares does it alone,
// all at once (so the backend's group commit takes their shares
// together, and their leases share a commit), and answers each in the
// request's order with its own outcome. A client uploading small files
// several at a time sends the puts for one server that wait behind its
// call in flight as one call: one gRPC call, one handler, instead of one
// each.
func (s *Server) PutSharesBatch(ctx context.Context, req *pb.PutSharesBatchRequest) (*pb.PutSharesBatchResponse, error) {
	n := len(req.Puts)
	if n == 0 || n > MaxPutsPerBatch {
		return nil, status.Errorf(codes.InvalidArgument, "put shares batch: %d puts, want 1 to %d", n, MaxPutsPerBatch)
	}
	var total int64
	for _, p := range req.Puts {
		for _, sh := range p.GetShares() {
			total += int64(len(sh.GetData()))
		}
	}
	if total > MaxChunk {
		return nil, status.Errorf(codes.InvalidArgument, "put shares batch: %d bytes of shares in one call, limit %d", total, MaxChunk)
	}
	out := make([]*pb.PutSharesResult, n)
	put := func(i int) {
		r, err := s.PutShares(ctx, req.Puts[i])
		if err != nil {
			st := status.Convert(err)
			out[i] = &pb.PutSharesResult{Code: uint32(st.Code()), Message: st.Message()}
			return
		}
		out[i] = &pb.PutSharesResult{Response: r}
	}
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		workers.run(func() {
			defer wg.Done()
			put(i)
		})
	}
	put(0)
	wg.Wait()
	return &pb.PutSharesBatchResponse{Results: out}, nil
}
