package storageclient

import (
	"context"
	"fmt"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// MaxPutBytes is the most share data one PutShares call carries (the
// protocol's max_chunk).
const MaxPutBytes = 1 << 20

// PutResult is the answer to PutShares.
type PutResult struct {
	// Stored are the shares this call sealed.
	Stored []uint32
	// AlreadyHave are shares the server held sealed already (lease added).
	AlreadyHave []uint32
	// InProgress are shares another upload is writing there right now:
	// not stored.
	InProgress []uint32
}

// PutShares stores whole shares of one storage index, each of size bytes,
// in one call: allocation, writes and seal at once. When it returns nil
// the shares in Stored are durable. A server that predates the call gives
// an error wrapping errors.ErrUnsupported (use Allocate instead).
func (c *Client) PutShares(ctx context.Context, index [storage.StorageIndexSize]byte, size int64, shares map[uint32][]byte, leaseSecret []byte) (*PutResult, error) {
	req, err := putRequest(index, size, shares, leaseSecret)
	if err != nil {
		return nil, err
	}
	return c.putShares(ctx, req)
}

// putObj names a PutShares call in errors.
func putObj(index []byte) string { return fmt.Sprintf("put shares of %x", index) }

// putRequest checks and builds a PutShares request.
func putRequest(index [storage.StorageIndexSize]byte, size int64, shares map[uint32][]byte, leaseSecret []byte) (*pb.PutSharesRequest, error) {
	obj := func() string { return putObj(index[:]) } // only for errors
	req := &pb.PutSharesRequest{StorageIndex: index[:], ShareSize: size, LeaseSecret: leaseSecret}
	req.Shares = make([]*pb.ShareData, 0, len(shares))
	var total int64
	for n, data := range shares {
		if int64(len(data)) != size {
			return nil, fmt.Errorf("%s: share %d has %d bytes, share size is %d: %w", obj(), n, len(data), size, storage.ErrRange)
		}
		total += size
		req.Shares = append(req.Shares, &pb.ShareData{ShareNum: n, Data: data})
	}
	if total > MaxPutBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than one call carries (%d): %w", obj(), total, MaxPutBytes, storage.ErrRange)
	}
	return req, nil
}

// putShares sends one PutShares call.
func (c *Client) putShares(ctx context.Context, req *pb.PutSharesRequest) (*PutResult, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.rpc.PutShares(ctx, req)
	if err != nil {
		return nil, wrap(putObj(req.StorageIndex), err)
	}
	return putResult(r), nil
}

func putResult(r *pb.PutSharesResponse) *PutResult {
	return &PutResult{Stored: r.GetStored(), AlreadyHave: r.GetAlreadyHave(), InProgress: r.GetInProgress()}
}
