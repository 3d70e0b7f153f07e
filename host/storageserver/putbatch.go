package storageserver

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
)

// MaxPutsPerBatch is the most puts one PutSharesBatch carries.
const MaxPutsPerBatch = 64

// PutSharesBatch does each put of a batch as PutShares does it alone,
// all together: their shares go to the backend in one storage.PutBatch
// (one plugin call, one group commit), their leases share a commit, and
// each put is answered in the request's order with its own outcome. A client uploading small files
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
	resps, errs := s.putMany(ctx, req.Puts)
	out := make([]*pb.PutSharesResult, n)
	for i := range out {
		if errs[i] != nil {
			st := status.Convert(errs[i])
			out[i] = &pb.PutSharesResult{Code: uint32(st.Code()), Message: st.Message()}
			continue
		}
		out[i] = &pb.PutSharesResult{Response: resps[i]}
	}
	return &pb.PutSharesBatchResponse{Results: out}, nil
}
