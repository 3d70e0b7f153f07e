// Package storageserver is the storage server service: it keeps shares and
// mutable slots of other nodes in a storage.Backend and serves them over
// the node-to-node storage protocol tarn.storageserver.v1, a gRPC service
// that runs over pinned-TLS node links (host/nodelink).
//
// Only grid members may write: every RPC but GetVersion must carry a valid
// grid membership proof (nodelink.CheckMembership), unless the server runs
// with OpenReads, which lets any node read. Uploads are bounded per client
// node, idle uploads are aborted, and a stream that stops moving is ended,
// so a hung client holds nothing for long. docs/protocol.md describes the
// wire contract.
package storageserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec shareCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tarnfs/tarn/host/nodelink"
	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Protocol limits. A message never carries more than MaxChunk bytes of
// data, far below gRPC's 4 MiB default.
const (
	ProtocolVersion  = 1
	MaxChunk         = 1 << 20
	MaxSlotSize      = 1 << 20
	MaxRanges        = 1024
	MaxSharesPerCall = 256
	LeaseSecretSize  = 32
	HandleSize       = 16
	maxReasonLen     = 1024
	maxRecvMsgSize   = MaxChunk + 64<<10
)

// Defaults for Config fields left zero.
const (
	DefaultMaxUploadsPerClient = 64
	DefaultIdleTimeout         = 60 * time.Second
	DefaultLeaseDuration       = 31 * 24 * time.Hour
	DefaultMaxShareSize        = 64 << 30
	DefaultMaxStreamsPerConn   = 128
)

// StreamWorkers is how many goroutines of a storage server's gRPC server
// wait for calls, for all connections together: about the calls in
// flight of a client uploading small files 16 at a time.
const StreamWorkers = 16

// Config configures a Server.
type Config struct {
	// Backend keeps the bytes. Required.
	Backend storage.Backend
	// GridSecret is the 32-byte grid secret. Nil makes an open server that
	// any node may write to (tests, private dev grids only).
	GridSecret []byte
	// OpenReads lets nodes without a membership proof read (ReadShare,
	// ListShares, ReadSlot) and report corruption.
	OpenReads bool
	// Reserved is the space, in bytes, the server keeps free: an Allocate
	// that would leave less is refused.
	Reserved int64
	// MaxShareSize bounds one share (default DefaultMaxShareSize).
	MaxShareSize int64
	// MaxUploadsPerClient bounds the unsealed shares one client node may
	// hold open at once (default DefaultMaxUploadsPerClient).
	MaxUploadsPerClient int
	// IdleTimeout aborts an upload that received nothing for this long and
	// ends a stream whose peer stopped sending or reading (default
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
	// LeaseDuration is how long a lease lasts from its last renewal.
	LeaseDuration time.Duration
	// GC turns on the lease crawler (crawler.go): shares whose leases
	// have all expired are removed. Off by default, as in Tahoe-LAFS.
	GC bool
	// CrawlInterval is the time between crawler passes (default
	// DefaultCrawlInterval); CrawlPause its pause after each storage index
	// (default DefaultCrawlPause), which keeps it from starving requests.
	CrawlInterval time.Duration
	CrawlPause    time.Duration
	// LeasePath is the bbolt file that keeps leases; "" keeps them in
	// memory only.
	LeasePath string
	// Software names the implementation in GetVersion.
	Software string
	Logger   hclog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// ValidateSlotWrite, if set, vets every WriteSlot before it is applied:
	// current is the slot's value whose token the writer expects (nil when
	// it expects no slot), next the proposed value. An error refuses the
	// write: a gRPC status error is sent as is, any other error as
	// PERMISSION_DENIED. Mutable files plug their signature check in here.
	ValidateSlotWrite func(ctx context.Context, ref storage.Ref, current, next []byte) error
}

// Stats are counters of a running server.
type Stats struct {
	OpenUploads      int
	OpenBytes        int64
	Sealed           int64
	Aborted          int64
	IdleAborted      int64
	CorruptionAdvice int64
	// CorruptRemoved counts shares the server checked with an advised
	// verify cap, found corrupt and removed.
	CorruptRemoved int64
}

// Server implements the storage protocol over a Backend.
type Server struct {
	pb.UnimplementedStorageServerServer
	cfg    Config
	log    hclog.Logger
	leases leaseStore

	mu        sync.Mutex
	uploads   map[[HandleSize]byte]*upload
	byRef     map[storage.Ref]*upload
	perClient map[string]int
	// claiming is the bytes of allocations between their space check and
	// the backend's Create; after Create the backend's Space counts them
	// (the storage contract: open writers' sizes are not Free).
	claiming  int64
	openBytes int64 // sizes of open uploads, for Stats

	space spaceCache // PutShares' view of the free space
	fresh leaseCache // leases written lately, not rewritten by addLease

	held heldCount // shares held (held.go)
	// noSpace is called when a share or slot is refused for lack of
	// space (OnNoSpace).
	noSpace atomic.Pointer[func()]

	sealed, aborted, idleAborted, advice, removed atomic.Int64
	verifying                                     chan struct{} // one advised share checked at a time

	gcMu    sync.RWMutex // the crawler's removals (write) against Allocate and RenewLease (read)
	crawlMu sync.Mutex
	crawl   CrawlStats

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var _ pb.StorageServerServer = (*Server)(nil)

// upload is one allocated, unsealed share.
type upload struct {
	handle [HandleSize]byte
	ref    storage.Ref
	size   int64
	owner  string // key hash of the client node that allocated it

	mu         sync.Mutex // serialises writes, seal and abort
	w          storage.Writer
	done       bool
	lastActive atomic.Int64 // unix nanoseconds
	busy       atomic.Int32 // operations in progress; never reaped while > 0
}

// New returns a server; Close it to abort open uploads and close the lease
// store.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("storage server: no backend")
	}
	if cfg.GridSecret != nil && len(cfg.GridSecret) != nodelink.GridSecretSize {
		return nil, fmt.Errorf("storage server: grid secret is %d bytes, want %d", len(cfg.GridSecret), nodelink.GridSecretSize)
	}
	if cfg.Reserved < 0 {
		return nil, fmt.Errorf("storage server: negative reserved space %d", cfg.Reserved)
	}
	if cfg.MaxShareSize <= 0 {
		cfg.MaxShareSize = DefaultMaxShareSize
	}
	if cfg.MaxUploadsPerClient <= 0 {
		cfg.MaxUploadsPerClient = DefaultMaxUploadsPerClient
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.Software == "" {
		cfg.Software = "tarn"
	}
	if cfg.CrawlInterval <= 0 {
		cfg.CrawlInterval = DefaultCrawlInterval
	}
	if cfg.CrawlPause <= 0 {
		cfg.CrawlPause = DefaultCrawlPause
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ls, lo, err := openLeases(cfg.LeasePath, cfg.LeaseDuration, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("storage server: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.Named("storageserver"),
		leases:    ls,
		uploads:   map[[HandleSize]byte]*upload{},
		byRef:     map[storage.Ref]*upload{},
		perClient: map[string]int{},
		stop:      make(chan struct{}),
		verifying: make(chan struct{}, 1),
	}
	if cfg.GridSecret == nil {
		s.log.Warn("no grid secret: any node may write to this server")
	}
	if lo.unclean {
		s.log.Warn("the lease db was not closed cleanly: rebuilt from the records it held; the lease crawler removes nothing before the floor",
			"floor", lo.floor, "records", lo.kept, "read_error", lo.readErr)
	} else if !lo.floor.IsZero() {
		s.log.Info("the lease crawler removes nothing before the floor of an earlier unclean stop", "floor", lo.floor)
	}
	s.wg.Add(1)
	go s.reap()
	s.startHeldCount()
	if cfg.GC {
		s.wg.Add(1)
		go s.crawler()
	}
	return s, nil
}

// Close aborts every open upload and closes the lease store.
func (s *Server) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	s.mu.Lock()
	ups := make([]*upload, 0, len(s.uploads))
	for _, u := range s.uploads {
		ups = append(ups, u)
	}
	s.mu.Unlock()
	for _, u := range ups {
		s.finish(context.Background(), u, false)
	}
	if b, ok := s.leases.(*boltLeases); ok {
		s.log.Info("lease db closing", "puts", b.puts.Load(), "commits", b.commits.Load(), "ceiling_raises", b.raises.Load())
	}
	return s.leases.close()
}

// ServerOptions are the gRPC options the protocol needs: message limits,
// stream limits and the membership check (which applies to this service's
// methods only, so other services may share the gRPC server).
// NewGRPCServer applies them; to compose a server yourself, pass them to
// nodelink.NewServer and call Register.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// A call runs on one of a few long-lived goroutines whose stacks
		// have grown already, not on a fresh goroutine whose 8 KiB stack
		// is grown and copied again at every call (runtime.morestack was
		// ~7% of a storage node's CPU under small uploads). When every
		// worker is busy (long share streams), a call gets a goroutine
		// of its own as before.
		grpc.NumStreamWorkers(StreamWorkers),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.MaxConcurrentStreams(DefaultMaxStreamsPerConn),
		grpc.ForceServerCodecV2(shareCodec{encoding.GetCodecV2("proto")}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainUnaryInterceptor(s.observeUnary),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// NewGRPCServer returns a gRPC server on pinned-TLS links presenting cert,
// with this service registered. Serve it on a transport listener.
func (s *Server) NewGRPCServer(cert tls.Certificate, opts ...grpc.ServerOption) *grpc.Server {
	g := nodelink.NewServer(cert, append(s.ServerOptions(), opts...)...)
	pb.RegisterStorageServerServer(g, s)
	return g
}

// Register registers the storage service on g.
func (s *Server) Register(g *grpc.Server) { pb.RegisterStorageServerServer(g, s) }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{OpenUploads: len(s.uploads), OpenBytes: s.openBytes}
	s.mu.Unlock()
	st.Sealed = s.sealed.Load()
	st.Aborted = s.aborted.Load()
	st.IdleAborted = s.idleAborted.Load()
	st.CorruptionAdvice = s.advice.Load()
	st.CorruptRemoved = s.removed.Load()
	return st
}

// Leases returns the leases on a storage index.
func (s *Server) Leases(index [storage.StorageIndexSize]byte) ([]Lease, error) {
	return s.leases.list(index)
}

// readMethods may run without a membership proof when OpenReads is set.
var readMethods = map[string]bool{
	pb.StorageServer_ReadShare_FullMethodName:        true,
	pb.StorageServer_ListShares_FullMethodName:       true,
	pb.StorageServer_ReadSlot_FullMethodName:         true,
	pb.StorageServer_AdviseCorruption_FullMethodName: true,
}

// methodPrefix begins the full method name of every storage RPC.
var methodPrefix = "/" + pb.StorageServer_ServiceDesc.ServiceName + "/"

func (s *Server) authorize(ctx context.Context, method string) error {
	if !strings.HasPrefix(method, methodPrefix) {
		return nil // another service sharing the gRPC server decides for itself
	}
	if s.cfg.GridSecret == nil || method == pb.StorageServer_GetVersion_FullMethodName {
		return nil
	}
	if s.cfg.OpenReads && readMethods[method] {
		return nil
	}
	return nodelink.CheckMembership(ctx, s.cfg.GridSecret)
}

// available is the space a new allocation may take.
func (s *Server) available(ctx context.Context) (free, avail int64, err error) {
	sp, err := s.cfg.Backend.Space(ctx)
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	free = sp.Free - s.claiming
	s.mu.Unlock()
	return free, free - s.cfg.Reserved, nil
}

func (s *Server) GetVersion(ctx context.Context, _ *pb.GetVersionRequest) (*pb.GetVersionResponse, error) {
	_, avail, err := s.available(ctx)
	if err != nil {
		return nil, toStatus(fmt.Errorf("space: %w", err))
	}
	return &pb.GetVersionResponse{
		ProtocolVersion: ProtocolVersion,
		Software:        s.cfg.Software,
		Available:       max(avail, 0),
		Reserved:        s.cfg.Reserved,
		MaxShareSize:    s.cfg.MaxShareSize,
		MaxChunk:        MaxChunk,
		MaxSlotSize:     MaxSlotSize,
		OpenReads:       s.cfg.OpenReads || s.cfg.GridSecret == nil,
	}, nil
}

func (s *Server) Allocate(ctx context.Context, req *pb.AllocateRequest) (*pb.AllocateResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	obj := fmt.Sprintf("allocate %x", index[:])
	if err := checkLeaseSecret(req.LeaseSecret); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %v", obj, err)
	}
	if len(req.ShareNums) == 0 || len(req.ShareNums) > MaxSharesPerCall {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %d share numbers, want 1 to %d", obj, len(req.ShareNums), MaxSharesPerCall)
	}
	nums := slices.Clone(req.ShareNums)
	slices.Sort(nums)
	for i, n := range nums {
		if n >= MaxSharesPerCall {
			return nil, status.Errorf(codes.InvalidArgument, "%s: share number %d, want below %d", obj, n, MaxSharesPerCall)
		}
		if i > 0 && nums[i-1] == n {
			return nil, status.Errorf(codes.InvalidArgument, "%s: share number %d given twice", obj, n)
		}
	}
	if req.ShareSize < 0 || req.ShareSize > s.cfg.MaxShareSize {
		return nil, status.Errorf(codes.InvalidArgument, "%s: share size %d, want 0 to %d", obj, req.ShareSize, s.cfg.MaxShareSize)
	}
	owner, err := nodelink.PeerKeyHashFromContext(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%s: %v", obj, err)
	}
	s.gcMu.RLock() // what we find here keeps existing until its lease is added
	defer s.gcMu.RUnlock()

	have, err := s.cfg.Backend.List(ctx, index)
	if err != nil {
		return nil, toStatus(fmt.Errorf("%s: list: %w", obj, err))
	}
	resp := &pb.AllocateResponse{}
	var want []uint32
	s.mu.Lock()
	for _, n := range nums {
		switch {
		case slices.Contains(have, n):
			resp.AlreadyHave = append(resp.AlreadyHave, n)
		case s.byRef[storage.Ref{Index: index, Num: n}] != nil:
			resp.InProgress = append(resp.InProgress, n)
		default:
			want = append(want, n)
		}
	}
	s.mu.Unlock()

	if len(want) > 0 {
		if err := s.create(ctx, obj, index, want, req.ShareSize, owner, resp); err != nil {
			return nil, err
		}
	}
	if len(resp.AlreadyHave) > 0 || len(resp.Allocated) > 0 {
		if err := s.addLease(index, req.LeaseSecret); err != nil {
			s.log.Error("add lease", "index", fmt.Sprintf("%x", index[:]), "error", err)
		}
	}
	return resp, nil
}

// create reserves space and backend writers for the shares in want.
func (s *Server) create(ctx context.Context, obj string, index [storage.StorageIndexSize]byte, want []uint32, size int64, owner string, resp *pb.AllocateResponse) error {
	need := size * int64(len(want))
	sp, err := s.cfg.Backend.Space(ctx)
	if err != nil {
		return toStatus(fmt.Errorf("%s: space: %w", obj, err))
	}
	s.mu.Lock()
	free := sp.Free - s.claiming
	if free-need < s.cfg.Reserved {
		s.mu.Unlock()
		return status.Errorf(codes.ResourceExhausted, "%s: reserved space: %d free, %d reserved, %d asked for %d share(s) of %d bytes",
			obj, max(free, 0), s.cfg.Reserved, need, len(want), size)
	}
	if open := s.perClient[owner]; open+len(want) > s.cfg.MaxUploadsPerClient {
		s.mu.Unlock()
		return status.Errorf(codes.Unavailable, "%s: too many uploads open from node %s: %d open, %d more asked, limit %d",
			obj, owner, open, len(want), s.cfg.MaxUploadsPerClient)
	}
	// Claim the space and refs before the (maybe slow) backend calls.
	var claimed []*upload
	for _, n := range want {
		ref := storage.Ref{Index: index, Num: n}
		if s.byRef[ref] != nil {
			resp.InProgress = append(resp.InProgress, n)
			continue
		}
		u := &upload{ref: ref, size: size, owner: owner}
		if _, err := rand.Read(u.handle[:]); err != nil {
			s.mu.Unlock()
			return status.Errorf(codes.Internal, "%s: handle: %v", obj, err)
		}
		u.busy.Add(1)
		u.touch()
		s.byRef[ref] = u
		s.claiming += size
		s.openBytes += size
		s.perClient[owner]++
		claimed = append(claimed, u)
	}
	s.mu.Unlock()

	var firstErr error
	for _, u := range claimed {
		w, err := s.cfg.Backend.Create(ctx, u.ref, size)
		if err == nil && firstErr == nil {
			u.w = w
			continue
		}
		if w != nil {
			w.Abort(context.WithoutCancel(ctx))
		}
		if errors.Is(err, storage.ErrExists) {
			resp.AlreadyHave = append(resp.AlreadyHave, u.ref.Num) // sealed by a racing upload
		} else if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: create share %d: %w", obj, u.ref.Num, err)
		}
		u.w = nil
	}
	s.mu.Lock()
	for _, u := range claimed {
		s.claiming -= u.size
		u.busy.Add(-1)
		if u.w == nil || firstErr != nil {
			s.release(u)
			continue
		}
		s.uploads[u.handle] = u
		resp.Allocated = append(resp.Allocated, &pb.Allocated{ShareNum: u.ref.Num, Handle: u.handle[:]})
	}
	s.mu.Unlock()
	if firstErr != nil {
		for _, u := range claimed {
			if u.w != nil {
				u.w.Abort(context.WithoutCancel(ctx))
			}
		}
		return toStatus(firstErr)
	}
	slices.Sort(resp.AlreadyHave)
	return nil
}

// release forgets an upload's claims; s.mu must be held.
func (s *Server) release(u *upload) {
	if s.byRef[u.ref] == u {
		delete(s.byRef, u.ref)
		s.openBytes -= u.size
		if s.perClient[u.owner]--; s.perClient[u.owner] <= 0 {
			delete(s.perClient, u.owner)
		}
	}
	delete(s.uploads, u.handle)
}

func (u *upload) touch() { u.lastActive.Store(time.Now().UnixNano()) }

// lookup finds the caller's upload by handle and marks it busy; the caller
// must call u.busy.Add(-1).
func (s *Server) lookup(ctx context.Context, handle []byte) (*upload, error) {
	if len(handle) != HandleSize {
		return nil, status.Errorf(codes.InvalidArgument, "upload handle is %d bytes, want %d", len(handle), HandleSize)
	}
	owner, err := nodelink.PeerKeyHashFromContext(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%v", err)
	}
	s.mu.Lock()
	u := s.uploads[[HandleSize]byte(handle)]
	if u != nil {
		u.busy.Add(1)
	}
	s.mu.Unlock()
	if u == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "upload %x: %v (unknown, sealed, aborted or idle too long)", handle, storage.ErrClosed)
	}
	if u.owner != owner {
		u.busy.Add(-1)
		return nil, status.Errorf(codes.PermissionDenied, "upload %x belongs to another node", handle)
	}
	u.touch()
	return u, nil
}

func (s *Server) WriteShare(stream grpc.ClientStreamingServer[pb.WriteShareRequest, pb.WriteShareResponse]) error {
	ctx := stream.Context()
	var total int64
	err := watch(ctx, s.cfg.IdleTimeout, "write stream", func(touch func()) error {
		for {
			req, err := stream.Recv()
			if err == io.EOF {
				return stream.SendAndClose(&pb.WriteShareResponse{BytesWritten: total})
			}
			if err != nil {
				return err
			}
			touch()
			err = s.writeChunk(ctx, req)
			total += int64(len(req.Data))
			putChunk(req.Data) // written (or refused): the backend keeps no reference
			if err != nil {
				return err
			}
		}
	})
	return err
}

func (s *Server) writeChunk(ctx context.Context, req *pb.WriteShareRequest) error {
	if len(req.Data) > MaxChunk {
		return status.Errorf(codes.InvalidArgument, "write chunk of %d bytes, limit %d", len(req.Data), MaxChunk)
	}
	u, err := s.lookup(ctx, req.Handle)
	if err != nil {
		return err
	}
	defer u.busy.Add(-1)
	obj := fmt.Sprintf("write share %d of %x", u.ref.Num, u.ref.Index[:])
	// Written so that no sum can wrap: an offset near 1<<63 plus the
	// chunk's length would turn negative and pass (found by FuzzRequests).
	if req.Offset < 0 || req.Offset > u.size || int64(len(req.Data)) > u.size-req.Offset {
		return status.Errorf(codes.OutOfRange, "%s: %d bytes at %d pass the share size %d", obj, len(req.Data), req.Offset, u.size)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return status.Errorf(codes.FailedPrecondition, "%s: %v", obj, storage.ErrClosed)
	}
	if err := u.w.WriteAt(ctx, req.Data, req.Offset); err != nil {
		return toStatus(fmt.Errorf("%s: %w", obj, err))
	}
	u.touch()
	return nil
}

func (s *Server) Seal(ctx context.Context, req *pb.SealRequest) (*pb.SealResponse, error) {
	u, err := s.lookup(ctx, req.Handle)
	if err != nil {
		return nil, err
	}
	defer u.busy.Add(-1)
	if err := s.finish(ctx, u, true); err != nil {
		return nil, toStatus(err)
	}
	return &pb.SealResponse{}, nil
}

func (s *Server) Abort(ctx context.Context, req *pb.AbortRequest) (*pb.AbortResponse, error) {
	u, err := s.lookup(ctx, req.Handle)
	if err != nil {
		return nil, err
	}
	defer u.busy.Add(-1)
	if err := s.finish(ctx, u, false); err != nil {
		return nil, toStatus(err)
	}
	return &pb.AbortResponse{}, nil
}

// finish seals or aborts an upload and forgets it.
func (s *Server) finish(ctx context.Context, u *upload, seal bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return fmt.Errorf("share %d of %x: %w", u.ref.Num, u.ref.Index[:], storage.ErrClosed)
	}
	u.done = true
	s.mu.Lock()
	s.release(u)
	s.mu.Unlock()
	if seal {
		if err := u.w.Seal(ctx); err != nil {
			u.w.Abort(context.WithoutCancel(ctx))
			s.aborted.Add(1)
			return fmt.Errorf("seal share %d of %x: %w", u.ref.Num, u.ref.Index[:], err)
		}
		s.sealed.Add(1)
		s.heldAdd(u.ref.Index, 1, u.size)
		return nil
	}
	s.aborted.Add(1)
	if err := u.w.Abort(ctx); err != nil {
		return fmt.Errorf("abort share %d of %x: %w", u.ref.Num, u.ref.Index[:], err)
	}
	return nil
}

// reap aborts uploads that have been idle longer than IdleTimeout.
func (s *Server) reap() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-s.cfg.IdleTimeout).UnixNano()
		var idle []*upload
		s.mu.Lock()
		for _, u := range s.uploads {
			if u.busy.Load() == 0 && u.lastActive.Load() < cutoff {
				idle = append(idle, u)
			}
		}
		s.mu.Unlock()
		for _, u := range idle {
			if s.finish(context.Background(), u, false) == nil {
				s.idleAborted.Add(1)
				s.log.Info("aborted idle upload", "share", u.ref.String(), "node", u.owner)
			}
		}
	}
}

func (s *Server) ReadShare(req *pb.ReadShareRequest, stream grpc.ServerStreamingServer[pb.ReadShareResponse]) error {
	ctx := stream.Context()
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return err
	}
	ref := storage.Ref{Index: index, Num: req.ShareNum}
	obj := "read share " + ref.String()
	if len(req.Ranges) > MaxRanges {
		return status.Errorf(codes.InvalidArgument, "%s: %d ranges, limit %d", obj, len(req.Ranges), MaxRanges)
	}
	for i, r := range req.Ranges {
		if r.Offset < 0 || r.Length < 0 || r.Offset > (1<<62)-r.Length {
			return status.Errorf(codes.InvalidArgument, "%s: range %d (%d+%d) is negative or too large", obj, i, r.Offset, r.Length)
		}
	}
	f, size, err := s.open(ctx, ref)
	if err != nil {
		return toStatus(fmt.Errorf("%s: %w", obj, err))
	}
	readAt := func(p []byte, off int64) (int, error) { return s.cfg.Backend.ReadAt(ctx, ref, p, off) }
	if f != nil {
		defer f.Close()
		readAt = f.ReadAt
	}
	return watch(ctx, s.cfg.IdleTimeout, "read stream", func(touch func()) error {
		var buf []byte
		sent := false
		for i, r := range req.Ranges {
			end := min(r.Offset+r.Length, size)
			for off := r.Offset; off < end; {
				n := min(end-off, MaxChunk)
				if int64(cap(buf)) < n {
					buf = make([]byte, n)
				}
				p := buf[:n]
				got, err := readAt(p, off)
				if err != nil && !(err == io.EOF && int64(got) == n) {
					if err == io.EOF {
						err = fmt.Errorf("share ended at %d: %w", off+int64(got), storage.ErrRange)
					}
					return toStatus(fmt.Errorf("%s: %w", obj, err))
				}
				if err := stream.Send(&pb.ReadShareResponse{Range: uint32(i), Offset: off, Data: p, ShareSize: size}); err != nil {
					return err
				}
				sent = true
				touch()
				off += n
			}
		}
		if !sent {
			// Tell the reader the share size even when no byte was asked.
			return stream.Send(&pb.ReadShareResponse{ShareSize: size})
		}
		return nil
	})
}

// open finds a sealed share's size and, when the backend hands over files
// (the disk plugin on the fast path), its file, read then with pread: no
// plugin call or copy per chunk. Without one f is nil and reads go
// through Backend.ReadAt.
func (s *Server) open(ctx context.Context, ref storage.Ref) (f *os.File, size int64, err error) {
	if o, ok := s.cfg.Backend.(storage.Opener); ok {
		f, size, err = o.Open(ctx, ref)
		if !errors.Is(err, errors.ErrUnsupported) {
			return f, size, err
		}
	}
	size, err = s.cfg.Backend.Stat(ctx, ref)
	return nil, size, err
}

func (s *Server) ListShares(ctx context.Context, req *pb.ListSharesRequest) (*pb.ListSharesResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	nums, err := s.cfg.Backend.List(ctx, index)
	if err != nil {
		return nil, toStatus(fmt.Errorf("list shares of %x: %w", index[:], err))
	}
	resp := &pb.ListSharesResponse{}
	for _, n := range nums {
		size, err := s.cfg.Backend.Stat(ctx, storage.Ref{Index: index, Num: n})
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, toStatus(fmt.Errorf("list shares of %x: stat %d: %w", index[:], n, err))
		}
		resp.Shares = append(resp.Shares, &pb.ShareInfo{ShareNum: n, Size: size})
	}
	return resp, nil
}

func (s *Server) ReadSlot(ctx context.Context, req *pb.ReadSlotRequest) (*pb.ReadSlotResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	ref := storage.Ref{Index: index, Num: req.SlotNum}
	v, tok, err := s.cfg.Backend.ReadSlot(ctx, ref)
	if err != nil {
		return nil, toStatus(fmt.Errorf("read slot %s: %w", ref, err))
	}
	return &pb.ReadSlotResponse{Value: v, Token: tok}, nil
}

func (s *Server) WriteSlot(ctx context.Context, req *pb.WriteSlotRequest) (*pb.WriteSlotResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	ref := storage.Ref{Index: index, Num: req.SlotNum}
	obj := "write slot " + ref.String()
	if err := checkLeaseSecret(req.LeaseSecret); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %v", obj, err)
	}
	if len(req.Value) > MaxSlotSize {
		return nil, status.Errorf(codes.InvalidArgument, "%s: value of %d bytes, limit %d", obj, len(req.Value), MaxSlotSize)
	}
	if _, avail, err := s.available(ctx); err == nil && avail < int64(len(req.Value)) {
		return nil, status.Errorf(codes.ResourceExhausted, "%s: reserved space: %d free, %d reserved, %d asked",
			obj, max(avail+s.cfg.Reserved, 0), s.cfg.Reserved, len(req.Value))
	}
	if v := s.cfg.ValidateSlotWrite; v != nil {
		var current []byte
		if req.ExpectToken != "" {
			cur, tok, err := s.cfg.Backend.ReadSlot(ctx, ref)
			if errors.Is(err, storage.ErrNotFound) || (err == nil && tok != req.ExpectToken) {
				return nil, toStatus(fmt.Errorf("%s: %w", obj, storage.ErrConflict))
			}
			if err != nil {
				return nil, toStatus(fmt.Errorf("%s: %w", obj, err))
			}
			current = cur
		}
		if err := v(ctx, ref, current, req.Value); err != nil {
			if _, ok := status.FromError(err); ok {
				return nil, err
			}
			return nil, status.Errorf(codes.PermissionDenied, "%s: refused: %v", obj, err)
		}
	}
	// The backend's test-and-set still decides: a write that raced the
	// check above loses with ErrConflict.
	tok, err := s.cfg.Backend.WriteSlot(ctx, ref, req.ExpectToken, req.Value)
	if err != nil {
		return nil, toStatus(fmt.Errorf("%s: %w", obj, err))
	}
	if err := s.addLease(index, req.LeaseSecret); err != nil {
		s.log.Error("add lease", "index", fmt.Sprintf("%x", index[:]), "error", err)
	}
	return &pb.WriteSlotResponse{Token: tok}, nil
}

func (s *Server) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	obj := fmt.Sprintf("renew lease on %x", index[:])
	if err := checkLeaseSecret(req.LeaseSecret); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %v", obj, err)
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	nums, err := s.cfg.Backend.List(ctx, index)
	if err != nil {
		return nil, toStatus(fmt.Errorf("%s: %w", obj, err))
	}
	if len(nums) == 0 {
		// Slots cannot be listed through the backend; an index with a
		// lease already is one this server holds slots for.
		ls, err := s.leases.list(index)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%s: %v", obj, err)
		}
		if len(ls) == 0 {
			return nil, toStatus(fmt.Errorf("%s: no shares here: %w", obj, storage.ErrNotFound))
		}
	}
	exp := s.cfg.Now().Add(s.cfg.LeaseDuration)
	if err := s.leases.put(index, sha256.Sum256(req.LeaseSecret), exp); err != nil {
		return nil, status.Errorf(codes.Internal, "%s: %v", obj, err)
	}
	s.fresh.add(index, sha256.Sum256(req.LeaseSecret), exp)
	return &pb.RenewLeaseResponse{ExpiresUnix: exp.Unix()}, nil
}

// addLease adds or extends the lease an upload or slot write implies. A
// lease this server wrote recently enough (see leaseCache) is left as it
// is: a directory written many times a minute costs one lease commit a
// day, not one fdatasync per write.
func (s *Server) addLease(index [storage.StorageIndexSize]byte, secret []byte) error {
	return s.beginLease(index, secret)()
}

// beginLease is addLease in two steps: the record is queued now and
// committed (with the records queued by others meanwhile) when the
// returned wait is called, which must happen exactly once, before the
// lease is acknowledged.
func (s *Server) beginLease(index [storage.StorageIndexSize]byte, secret []byte) (wait func() error) {
	owner := sha256.Sum256(secret)
	exp := s.cfg.Now().Add(s.cfg.LeaseDuration)
	if s.fresh.has(index, owner, exp.Add(-s.cfg.LeaseDuration/leaseRefreshDiv)) {
		return func() error { return nil }
	}
	w := s.leases.begin(index, owner, exp)
	return func() error {
		if err := w(); err != nil {
			return err
		}
		s.fresh.add(index, owner, exp)
		return nil
	}
}

func (s *Server) AdviseCorruption(ctx context.Context, req *pb.AdviseCorruptionRequest) (*pb.AdviseCorruptionResponse, error) {
	index, err := parseIndex(req.StorageIndex)
	if err != nil {
		return nil, err
	}
	reason := req.Reason
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	reason = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, reason)
	from, _ := nodelink.PeerKeyHashFromContext(ctx)
	kind := "share"
	if req.Slot {
		kind = "slot"
	}
	s.advice.Add(1)
	ref := storage.Ref{Index: index, Num: req.ShareNum}
	s.log.Warn("corruption reported", "kind", kind, "share", ref.String(), "by", from, "reason", reason)
	resp := &pb.AdviseCorruptionResponse{}
	if req.VerifyCap != "" && !req.Slot {
		removed, err := s.checkAdvised(ctx, ref, req.VerifyCap)
		if err != nil {
			s.log.Info("advised share not removed", "share", ref.String(), "why", err)
		}
		resp.Removed = removed
	}
	return resp, nil
}

func parseIndex(b []byte) ([storage.StorageIndexSize]byte, error) {
	if len(b) != storage.StorageIndexSize {
		return [storage.StorageIndexSize]byte{}, status.Errorf(codes.InvalidArgument, "storage index is %d bytes, want %d", len(b), storage.StorageIndexSize)
	}
	return [storage.StorageIndexSize]byte(b), nil
}

func checkLeaseSecret(b []byte) error {
	if len(b) != LeaseSecretSize {
		return fmt.Errorf("lease secret is %d bytes, want %d", len(b), LeaseSecretSize)
	}
	return nil
}

// shareCodec is the storage server's gRPC codec: the standard proto codec,
// except for WriteShareRequest, the message that carries nearly every byte
// a server receives. The standard codec first joins the message's HTTP/2
// frames into one buffer from gRPC's pool (which it zeroes whole, at 512
// KiB or 1 MiB for a ~350 KiB chunk), then proto.Unmarshal copies the data
// out of it into a fresh allocation. shareCodec reads the few header bytes
// and copies the data straight from the frames into a reused chunk buffer:
// one copy, no zeroing, no garbage per message. A message laid out other
// than the way protobuf encoders write it (data last) goes through the
// standard codec.
type shareCodec struct{ encoding.CodecV2 }

func (c shareCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if req, ok := v.(*pb.WriteShareRequest); ok && unmarshalWriteShare(data, req) {
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// chunkPool holds MaxChunk-sized buffers for WriteShareRequest data;
// lent are those handed out and not yet back, so that putChunk takes back
// only its own buffers, never a request's data that someone else decoded
// (and may still hold).
var (
	chunkPool = sync.Pool{New: func() any { b := make([]byte, MaxChunk); return &b }}
	lentMu    sync.Mutex
	lent      = map[*byte]struct{}{}
)

// getChunk returns an n-byte buffer: pooled when n fits a chunk.
func getChunk(n int) []byte {
	if n > MaxChunk || n == 0 {
		return make([]byte, n)
	}
	b := (*chunkPool.Get().(*[]byte))[:n]
	lentMu.Lock()
	lent[unsafe.SliceData(b)] = struct{}{}
	lentMu.Unlock()
	return b
}

// putChunk returns a buffer getChunk lent to the pool; it ignores others.
func putChunk(b []byte) {
	if cap(b) != MaxChunk {
		return
	}
	p := unsafe.SliceData(b)
	lentMu.Lock()
	_, ok := lent[p]
	delete(lent, p)
	lentMu.Unlock()
	if ok {
		b = b[:MaxChunk]
		chunkPool.Put(&b)
	}
}

// writeShareHead is how many leading bytes unmarshalWriteShare parses:
// room for the handle and offset fields and the data field's tag and
// length, with slack for a handle longer than HandleSize.
const writeShareHead = 96

// unmarshalWriteShare decodes a WriteShareRequest whose data field comes
// last and once, copying the data from the frames into a chunk buffer. It
// reports false (req untouched) for any other layout, which the standard
// codec then decodes, and rejects nothing itself.
func unmarshalWriteShare(data mem.BufferSlice, req *pb.WriteShareRequest) bool {
	total := data.Len()
	var head [writeShareHead]byte
	h := head[:data.CopyTo(head[:min(total, writeShareHead)])]
	var (
		handle       []byte
		offset       int64
		seenH, seenO bool
	)
	for pos := 0; pos < len(h); {
		num, typ, n := protowire.ConsumeTag(h[pos:])
		if n < 0 {
			return false
		}
		pos += n
		switch {
		case num == 1 && typ == protowire.BytesType && !seenH:
			b, n := protowire.ConsumeBytes(h[pos:])
			if n < 0 {
				return false
			}
			handle, seenH, pos = b, true, pos+n
		case num == 2 && typ == protowire.VarintType && !seenO:
			x, n := protowire.ConsumeVarint(h[pos:])
			if n < 0 {
				return false
			}
			offset, seenO, pos = int64(x), true, pos+n
		case num == 3 && typ == protowire.BytesType:
			l, n := protowire.ConsumeVarint(h[pos:])
			if n < 0 {
				return false
			}
			pos += n
			if uint64(total-pos) != l {
				return false // not the last field: the standard codec decides
			}
			req.Data = getChunk(int(l))
			copyFrom(data, pos, req.Data)
			if seenH {
				req.Handle = append([]byte(nil), handle...)
			}
			req.Offset = offset
			return true
		default:
			return false
		}
	}
	return false // no data field within the head: a short or odd message
}

// copyFrom copies len(dst) bytes of data starting at off into dst.
func copyFrom(data mem.BufferSlice, off int, dst []byte) {
	for _, b := range data {
		p := b.ReadOnlyData()
		if off >= len(p) {
			off -= len(p)
			continue
		}
		n := copy(dst, p[off:])
		dst, off = dst[n:], 0
		if len(dst) == 0 {
			return
		}
	}
}
