package storageserver

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
)

// ListSlots, like the other reads, runs without a membership proof on a
// server with OpenReads.
func init() { readMethods[pb.StorageServer_ListSlots_FullMethodName] = true }

// ListSlots returns the slot numbers the backend holds for a storage index.
// Mutable-file clients call it on every server they know and then read
// only the slots that exist, instead of asking every server for every
// share number. A backend plugin that predates the call makes it
// UNIMPLEMENTED here too, so the client falls back as it does for a server
// that predates it.
func (s *Server) ListSlots(ctx context.Context, req *pb.ListSlotsRequest) (*pb.ListSlotsResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	nums, err := s.cfg.Backend.ListSlots(ctx, index)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, status.Errorf(codes.Unimplemented, "list slots of %x: %v", index[:], err)
	}
	if err != nil {
		return nil, toStatus(fmt.Errorf("list slots of %x: %w", index[:], err))
	}
	return &pb.ListSlotsResponse{SlotNums: nums}, nil
}
