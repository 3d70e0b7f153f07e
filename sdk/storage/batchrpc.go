package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

var _ BatchPutter = (*Client)(nil)

// PutBatch stores several whole shares with one RPC (BatchPutter). With
// the arena their bytes go in one region, copied once; else in the
// message. A plugin that predates the call (its Info says so, or it
// answers UNIMPLEMENTED) gives an error wrapping errors.ErrUnsupported,
// and storage.PutBatch then puts the shares one by one.
func (c *Client) PutBatch(ctx context.Context, puts []PutItem) ([]error, error) {
	if !c.info.PutBatch || c.noBatch.Load() {
		return nil, fmt.Errorf("put batch of %d shares: plugin predates PutBatch: %w", len(puts), errors.ErrUnsupported)
	}
	if err := CheckBatch(puts); err != nil {
		return nil, err
	}
	req := &storagepb.PutBatchRequest{Puts: make([]*storagepb.PutRequest, len(puts))}
	var rg dataplane.Region
	var inArena bool
	if c.arena != nil {
		need := 0
		for _, p := range puts {
			if _, ok := c.arena.Offset(p.Data); !ok {
				need += len(p.Data)
			}
		}
		if need == 0 {
			inArena = true
		} else if r, ok := c.alloc(need); ok && len(r.Bytes) == need {
			rg, inArena = r, true
		} else if ok {
			c.arena.Free(r)
		}
	}
	at := 0
	for i, p := range puts {
		pr := &storagepb.PutRequest{Ref: pbRef(p.Ref)}
		switch o, ok := 0, false; {
		case !inArena || len(p.Data) == 0:
			pr.Payload = &storagepb.PutRequest_Data{Data: p.Data}
		default:
			if o, ok = c.arena.Offset(p.Data); !ok {
				copy(rg.Bytes[at:], p.Data)
				o = rg.Off + at
				at += len(p.Data)
			}
			pr.Payload = &storagepb.PutRequest_Region{Region: &storagepb.Region{Off: int64(o), Len: int64(len(p.Data))}}
		}
		req.Puts[i] = pr
	}
	r, err := c.rpc.PutBatch(ctx, req)
	if rg.Bytes != nil {
		c.release(rg, err)
	}
	if status.Code(err) == codes.Unimplemented {
		c.noBatch.Store(true)
		return nil, fmt.Errorf("put batch of %d shares: plugin predates PutBatch: %w", len(puts), errors.ErrUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("put batch of %d shares: %w", len(puts), fromStatus(err))
	}
	if len(r.Results) != len(puts) {
		return nil, fmt.Errorf("put batch of %d shares: plugin answered %d outcomes", len(puts), len(r.Results))
	}
	errs := make([]error, len(puts))
	for i, res := range r.Results {
		errs[i] = resultErr(res)
	}
	return errs, nil
}

// putResult is the wire form of one share's outcome.
func putResult(err error) *storagepb.PutResult {
	if err == nil {
		return &storagepb.PutResult{}
	}
	st := status.Convert(toStatus(err))
	r := &storagepb.PutResult{Code: uint32(st.Code()), Message: st.Message()}
	if r.Code == 0 {
		r.Code = uint32(codes.Unknown)
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*storagepb.ErrorDetail); ok {
			r.Sentinel = ed.Sentinel
		}
	}
	return r
}

// resultErr rebuilds a share's error from its wire form, sentinel
// included.
func resultErr(r *storagepb.PutResult) error {
	if r.Code == 0 {
		return nil
	}
	st := status.New(codes.Code(r.Code), r.Message)
	if r.Sentinel != "" {
		if d, err := st.WithDetails(&storagepb.ErrorDetail{Sentinel: r.Sentinel}); err == nil {
			st = d
		}
	}
	return fromStatus(st.Err())
}

// PutBatch stores the shares of one call: with the backend's own
// PutBatch when it has one (the disk backend makes them durable with one
// group commit), else with one Put per share, all at once.
func (s *server) PutBatch(ctx context.Context, req *storagepb.PutBatchRequest) (*storagepb.PutBatchResponse, error) {
	if n := len(req.Puts); n == 0 || n > MaxBatchPuts {
		return nil, status.Errorf(codes.InvalidArgument, "put batch of %d shares: want 1 to %d per call", n, MaxBatchPuts)
	}
	var total int64
	for _, p := range req.Puts {
		switch pl := p.GetPayload().(type) {
		case *storagepb.PutRequest_Region:
			total += max(pl.Region.GetLen(), 0)
		case *storagepb.PutRequest_Data:
			total += int64(len(pl.Data))
		}
	}
	if total > MaxBatchBytes {
		return nil, status.Errorf(codes.InvalidArgument, "put batch of %d bytes: at most %d per call", total, MaxBatchBytes)
	}
	results := make([]*storagepb.PutResult, len(req.Puts))
	var items []PutItem
	var at []int // of each item in req.Puts
	for i, p := range req.Puts {
		ref, err := refFrom(p.Ref)
		var data []byte
		if err == nil {
			switch pl := p.Payload.(type) {
			case *storagepb.PutRequest_Region:
				data, err = s.region(pl.Region)
			case *storagepb.PutRequest_Data:
				data = pl.Data
			}
		}
		if err != nil {
			results[i] = putResult(fmt.Errorf("put share %d of the batch: %w", i, err))
			continue
		}
		items = append(items, PutItem{Ref: ref, Data: data})
		at = append(at, i)
	}
	errs := s.putItems(ctx, items)
	for k, i := range at {
		results[i] = putResult(errs[k])
	}
	return &storagepb.PutBatchResponse{Results: results}, nil
}

// putItems stores items and returns each one's outcome.
func (s *server) putItems(ctx context.Context, items []PutItem) []error {
	errs := make([]error, len(items))
	if len(items) == 0 {
		return errs
	}
	if bp, ok := s.b.(BatchPutter); ok {
		got, err := bp.PutBatch(ctx, items)
		switch {
		case err == nil && len(got) != len(items):
			err = fmt.Errorf("put batch of %d shares: backend answered %d outcomes", len(items), len(got))
		case err == nil:
			return got
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
	}
	var wg sync.WaitGroup
	for i := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Put(ctx, s.b, items[i].Ref, items[i].Data)
		}()
	}
	wg.Wait()
	return errs
}
