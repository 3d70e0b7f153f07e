package storageserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// spaceMaxAge is how old the free-space figure PutShares checks the
// reserve against may be. Asking the backend costs a plugin round trip,
// as much as storing a small share; the backend still refuses a share
// that does not fit, so a stale figure only blurs the reserve's edge.
const spaceMaxAge = time.Second

// spaceCache is the backend's last Space answer, less what PutShares
// stored since.
type spaceCache struct {
	mu    sync.Mutex
	at    time.Time
	free  int64
	since int64 // bytes PutShares stored after at
}

// putFree is the backend's free space for PutShares: cached for up to
// spaceMaxAge.
func (s *Server) putFree(ctx context.Context) (int64, error) {
	c := &s.space
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < spaceMaxAge {
		free := c.free - c.since
		c.mu.Unlock()
		return free, nil
	}
	c.mu.Unlock()
	sp, err := s.cfg.Backend.Space(ctx)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.at, c.free, c.since = time.Now(), sp.Free, 0
	c.mu.Unlock()
	return sp.Free, nil
}

// lazyObj names a PutShares call in errors; it is formatted only when
// one is made.
type lazyObj [storage.StorageIndexSize]byte

func (o lazyObj) String() string { return fmt.Sprintf("put shares of %x", o[:]) }

func (s *Server) putStored(n int64) {
	s.space.mu.Lock()
	s.space.since += n
	s.space.mu.Unlock()
}

// PutShares stores whole shares of one storage index in one call: the
// work of Allocate, WriteShare and Seal, with one backend call per share
// (storage.Put) and no List. A share sealed here already is answered as
// already held, one another upload is writing as in progress; neither is
// touched. Shares stored before an error stay stored (and leased); the
// error names the share that failed.
func (s *Server) PutShares(ctx context.Context, req *pb.PutSharesRequest) (*pb.PutSharesResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	obj := lazyObj(index) // formatted only for an error
	if err := checkLeaseSecret(req.LeaseSecret); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %v", obj, err)
	}
	if len(req.Shares) == 0 || len(req.Shares) > MaxSharesPerCall {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %d shares, want 1 to %d", obj, len(req.Shares), MaxSharesPerCall)
	}
	size := req.ShareSize
	if size < 0 || size > s.cfg.MaxShareSize || size > MaxChunk {
		return nil, status.Errorf(codes.InvalidArgument, "%s: share size %d, want 0 to %d", obj, size, min(s.cfg.MaxShareSize, MaxChunk))
	}
	shares := slices.Clone(req.Shares)
	slices.SortFunc(shares, func(a, b *pb.ShareData) int { return int(a.ShareNum) - int(b.ShareNum) })
	var total int64
	for i, sh := range shares {
		switch {
		case sh.ShareNum >= MaxSharesPerCall:
			return nil, status.Errorf(codes.InvalidArgument, "%s: share number %d, want below %d", obj, sh.ShareNum, MaxSharesPerCall)
		case i > 0 && shares[i-1].ShareNum == sh.ShareNum:
			return nil, status.Errorf(codes.InvalidArgument, "%s: share number %d given twice", obj, sh.ShareNum)
		case int64(len(sh.Data)) != size:
			return nil, status.Errorf(codes.InvalidArgument, "%s: share %d has %d bytes, share size is %d", obj, sh.ShareNum, len(sh.Data), size)
		}
		total += size
	}
	if total > MaxChunk {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %d bytes of shares in one call, limit %d", obj, total, MaxChunk)
	}
	s.gcMu.RLock() // what we store or find keeps existing until its lease is added
	defer s.gcMu.RUnlock()
	free, err := s.putFree(ctx)
	if err != nil {
		return nil, toStatus(fmt.Errorf("%s: space: %w", obj, err))
	}

	resp := &pb.PutSharesResponse{}
	type claim struct {
		u    *upload
		data []byte
	}
	var claimed []claim
	s.mu.Lock()
	if avail := free - s.claiming; avail-total < s.cfg.Reserved {
		s.mu.Unlock()
		return nil, status.Errorf(codes.ResourceExhausted, "%s: reserved space: %d free, %d reserved, %d asked for %d share(s) of %d bytes",
			obj, max(avail, 0), s.cfg.Reserved, total, len(shares), size)
	}
	for _, sh := range shares {
		ref := storage.Ref{Index: index, Num: sh.ShareNum}
		if s.byRef[ref] != nil {
			resp.InProgress = append(resp.InProgress, sh.ShareNum)
			continue
		}
		// Claimed like an allocation, so that an Allocate or another
		// PutShares of the same share meanwhile sees it in progress.
		u := &upload{ref: ref, size: size}
		s.byRef[ref] = u
		s.claiming += size
		s.openBytes += size
		claimed = append(claimed, claim{u, sh.Data})
	}
	s.mu.Unlock()

	// The lease record is queued before the backend stores the shares
	// (its group-committed fsync) and committed after: the leases of the
	// puts stored meanwhile share one commit (boltLeases), and the put is
	// acknowledged only once its record is committed. Should every share
	// fail, the index keeps a lease and nothing else, as after an
	// Allocate whose uploads are aborted.
	var leaseWait func() error
	if len(claimed) > 0 {
		leaseWait = s.beginLease(index, req.LeaseSecret)
	}
	var failed error
	var stored int64
	for _, c := range claimed {
		err := storage.Put(ctx, s.cfg.Backend, c.u.ref, c.data)
		switch {
		case err == nil:
			resp.Stored = append(resp.Stored, c.u.ref.Num)
			stored += size
		case errors.Is(err, storage.ErrExists):
			resp.AlreadyHave = append(resp.AlreadyHave, c.u.ref.Num)
		default:
			failed = fmt.Errorf("%s: share %d: %w", obj, c.u.ref.Num, err)
		}
		if failed != nil {
			break // the rest stay unstored; their claims go below
		}
	}
	s.mu.Lock()
	for _, c := range claimed {
		s.claiming -= c.u.size
		s.openBytes -= c.u.size
		if s.byRef[c.u.ref] == c.u {
			delete(s.byRef, c.u.ref)
		}
	}
	s.mu.Unlock()
	s.putStored(stored)
	s.sealed.Add(int64(len(resp.Stored)))
	if leaseWait != nil {
		if err := leaseWait(); err != nil {
			s.log.Error("add lease", "index", fmt.Sprintf("%x", index[:]), "error", err)
		}
	}
	if failed != nil {
		return nil, toStatus(failed)
	}
	return resp, nil
}
