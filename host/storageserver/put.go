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
// work of Allocate, WriteShare and Seal, with one backend call for all
// its shares (storage.PutBatch: one Put for one share) and no List. A
// share sealed here already is answered as already held, one another
// upload is writing as in progress; neither is touched. On an error the
// shares stored stay stored (and leased); the error names the first
// share, in share-number order, that failed. A put whose lease record
// cannot be committed fails too, its shares stored but not leased.
func (s *Server) PutShares(ctx context.Context, req *pb.PutSharesRequest) (*pb.PutSharesResponse, error) {
	resps, errs := s.putMany(ctx, []*pb.PutSharesRequest{req})
	return resps[0], errs[0]
}

// putJob is one PutShares of a putMany call.
type putJob struct {
	obj       lazyObj
	index     [storage.StorageIndexSize]byte
	req       *pb.PutSharesRequest
	shares    []*pb.ShareData // sorted by number
	size      int64
	total     int64
	resp      *pb.PutSharesResponse
	claimed   []*upload
	first     int // of its claimed shares in the backend batch
	leaseWait func() error
	err       error
}

// check validates a PutShares request into a job.
func (s *Server) check(req *pb.PutSharesRequest) *putJob {
	j := &putJob{req: req, resp: &pb.PutSharesResponse{}}
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		j.err = err
		return j
	}
	j.index, j.obj = index, lazyObj(index) // formatted only for an error
	obj := j.obj
	fail := func(format string, a ...any) *putJob {
		j.err = status.Errorf(codes.InvalidArgument, "%s: "+format, append([]any{obj}, a...)...)
		return j
	}
	if err := checkLeaseSecret(req.LeaseSecret); err != nil {
		return fail("%v", err)
	}
	if len(req.Shares) == 0 || len(req.Shares) > MaxSharesPerCall {
		return fail("%d shares, want 1 to %d", len(req.Shares), MaxSharesPerCall)
	}
	size := req.ShareSize
	if size < 0 || size > s.cfg.MaxShareSize || size > MaxChunk {
		return fail("share size %d, want 0 to %d", size, min(s.cfg.MaxShareSize, MaxChunk))
	}
	shares := slices.Clone(req.Shares)
	slices.SortFunc(shares, func(a, b *pb.ShareData) int { return int(a.ShareNum) - int(b.ShareNum) })
	var total int64
	for i, sh := range shares {
		switch {
		case sh.ShareNum >= MaxSharesPerCall:
			return fail("share number %d, want below %d", sh.ShareNum, MaxSharesPerCall)
		case i > 0 && shares[i-1].ShareNum == sh.ShareNum:
			return fail("share number %d given twice", sh.ShareNum)
		case int64(len(sh.Data)) != size:
			return fail("share %d has %d bytes, share size is %d", sh.ShareNum, len(sh.Data), size)
		}
		total += size
	}
	if total > MaxChunk {
		return fail("%d bytes of shares in one call, limit %d", total, MaxChunk)
	}
	j.shares, j.size, j.total = shares, size, total
	return j
}

// putMany does the PutShares of reqs together and answers each as it
// would be answered alone (a response, or the error it fails with): the
// shares of all of them go to the backend in one storage.PutBatch (one
// plugin call, one group commit) instead of one Put per share.
//
// The lease records are queued before the backend stores the shares (its
// group-committed fsync) and committed after: the leases of the puts
// stored meanwhile share one commit (boltLeases), and a put is answered
// only once its shares are durable and its lease record committed; a put
// whose lease commit fails fails (its shares stay stored). Should
// every share of a put fail, its index keeps a lease and nothing else, as
// after an Allocate whose uploads are aborted.
func (s *Server) putMany(ctx context.Context, reqs []*pb.PutSharesRequest) ([]*pb.PutSharesResponse, []error) {
	jobs := make([]*putJob, len(reqs))
	valid := 0
	for i, req := range reqs {
		jobs[i] = s.check(req)
		if jobs[i].err == nil {
			valid++
		}
	}
	resps := make([]*pb.PutSharesResponse, len(reqs))
	errs := make([]error, len(reqs))
	defer func() {
		for i, j := range jobs {
			if j.err != nil {
				errs[i] = j.err
			} else {
				resps[i] = j.resp
			}
		}
	}()
	if valid == 0 {
		return resps, errs
	}
	s.gcMu.RLock() // what we store or find keeps existing until its lease is added
	defer s.gcMu.RUnlock()
	free, err := s.putFree(ctx)
	if err != nil {
		for _, j := range jobs {
			if j.err == nil {
				j.err = toStatus(fmt.Errorf("%s: space: %w", j.obj, err))
			}
		}
		return resps, errs
	}

	var items []storage.PutItem
	s.mu.Lock()
	for _, j := range jobs {
		if j.err != nil {
			continue
		}
		if avail := free - s.claiming; avail-j.total < s.cfg.Reserved {
			j.err = status.Errorf(codes.ResourceExhausted, "%s: reserved space: %d free, %d reserved, %d asked for %d share(s) of %d bytes",
				j.obj, max(avail, 0), s.cfg.Reserved, j.total, len(j.shares), j.size)
			continue
		}
		j.first = len(items)
		for _, sh := range j.shares {
			ref := storage.Ref{Index: j.index, Num: sh.ShareNum}
			if s.byRef[ref] != nil {
				j.resp.InProgress = append(j.resp.InProgress, sh.ShareNum)
				continue
			}
			// Claimed like an allocation, so that an Allocate or another
			// PutShares of the same share meanwhile sees it in progress.
			u := &upload{ref: ref, size: j.size}
			s.byRef[ref] = u
			s.claiming += j.size
			s.openBytes += j.size
			j.claimed = append(j.claimed, u)
			items = append(items, storage.PutItem{Ref: ref, Data: sh.Data})
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		if len(j.claimed) > 0 {
			j.leaseWait = s.beginLease(j.index, j.req.LeaseSecret)
		}
	}

	var outs []error
	if len(items) > 0 {
		outs = storage.PutBatch(ctx, s.cfg.Backend, items)
	}

	var stored, sealed int64
	s.mu.Lock()
	for _, j := range jobs {
		for _, u := range j.claimed {
			s.claiming -= u.size
			s.openBytes -= u.size
			if s.byRef[u.ref] == u {
				delete(s.byRef, u.ref)
			}
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		var failed error
		for k, u := range j.claimed {
			switch err := outs[j.first+k]; {
			case err == nil:
				j.resp.Stored = append(j.resp.Stored, u.ref.Num)
				stored += j.size
				sealed++
				// Counted here, not from the answer: a put that fails
				// after storing some shares (another share, the lease)
				// answers no response, and its shares stay held.
				s.heldAdd(j.index, 1, j.size)
			case errors.Is(err, storage.ErrExists):
				j.resp.AlreadyHave = append(j.resp.AlreadyHave, u.ref.Num)
			case failed == nil:
				failed = fmt.Errorf("%s: share %d: %w", j.obj, u.ref.Num, err)
			}
		}
		if failed != nil {
			j.err = toStatus(failed)
		}
	}
	s.putStored(stored)
	s.sealed.Add(sealed)
	for _, j := range jobs {
		if j.leaseWait == nil {
			continue
		}
		if err := j.leaseWait(); err != nil {
			s.log.Error("add lease", "index", fmt.Sprintf("%x", j.index[:]), "error", err)
			// A share without a durable lease may be collected early
			// (storage.gc): the put fails, so the client places its
			// shares elsewhere or retries; what was stored stays stored.
			if j.err == nil {
				j.err = toStatus(fmt.Errorf("%s: lease not committed, shares %v stay stored without it: %w",
					j.obj, slices.Concat(j.resp.Stored, j.resp.AlreadyHave), err))
			}
		}
	}
	return resps, errs
}
