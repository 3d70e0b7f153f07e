package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
	"github.com/tarnfs/tarn/sdk/storage/storagepb"
)

// server is the plugin side of tarn.storage.v1: it answers RPCs by calling
// a Backend, taking payloads from the arena when the host sent offsets.
type server struct {
	storagepb.UnimplementedStorageServer
	b        Backend
	arena    *dataplane.Arena  // nil when the host offered none or it failed
	fds      *dataplane.FdConn // nil when the host offered no fd channel
	arenaErr error

	mu       sync.Mutex
	liveR    *os.File // the pipe of InfoRequest.liveness_fd_id: the
	liveW    *os.File // write end is held, never written, until exit
	next     uint64
	writers  map[uint64]Writer
	attached int
}

func newServer(b Backend, dp pluginkit.DataPlane, dpErr error) *server {
	return &server{b: b, arena: dp.Arena, fds: dp.Fds, arenaErr: dpErr, writers: map[uint64]Writer{}}
}

func (s *server) Info(ctx context.Context, req *storagepb.InfoRequest) (*storagepb.InfoResponse, error) {
	in, err := s.b.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	_, idx := s.b.(Indexer)
	r := &storagepb.InfoResponse{Name: in.Name, Version: in.Version, Protocol: ProtocolVersion,
		Arena: s.arena != nil, Indexes: idx, Put: true, PutBatch: true, Files: s.fds != nil}
	if _, ok := s.b.(Opener); ok && s.fds != nil {
		r.OpenFiles = true
	}
	if s.arenaErr != nil {
		r.ArenaError = s.arenaErr.Error()
	}
	if req.LivenessFdId != 0 && s.fds != nil && s.sendLiveness(req.LivenessFdId) == nil {
		r.LivenessFdId = req.LivenessFdId
	}
	return r, nil
}

// sendLiveness sends the read end of a pipe whose write end this process
// keeps open until it exits: the host sees it hang up the moment the
// process is gone, with no RPC.
func (s *server) sendLiveness(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.liveR == nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		s.liveR, s.liveW = r, w
	}
	return s.fds.Send(id, s.liveR)
}

func (s *server) Configure(ctx context.Context, req *storagepb.ConfigureRequest) (*storagepb.Empty, error) {
	if c, ok := s.b.(pluginkit.Configurer); ok {
		return &storagepb.Empty{}, toStatus(c.Configure(ctx, req.SettingsJson))
	}
	if t := bytes.TrimSpace(req.SettingsJson); len(t) > 0 && !bytes.Equal(t, []byte("{}")) && !bytes.Equal(t, []byte("null")) {
		return nil, status.Error(codes.InvalidArgument, "storage plugin takes no settings")
	}
	return &storagepb.Empty{}, nil
}

// Attach lasts as long as the host's connection. When the last host is
// gone, writers it left open are aborted so their bytes do not linger.
func (s *server) Attach(_ *storagepb.Empty, stream storagepb.Storage_AttachServer) error {
	s.mu.Lock()
	s.attached++
	s.mu.Unlock()
	<-stream.Context().Done()
	s.mu.Lock()
	s.attached--
	last := s.attached == 0
	s.mu.Unlock()
	if last {
		s.abortAll()
	}
	return nil
}

// abortAll aborts every writer still open.
func (s *server) abortAll() {
	s.mu.Lock()
	ws := s.writers
	s.writers = map[uint64]Writer{}
	s.mu.Unlock()
	for _, w := range ws {
		w.Abort(context.Background())
	}
}

func (s *server) Space(ctx context.Context, _ *storagepb.Empty) (*storagepb.SpaceResponse, error) {
	sp, err := s.b.Space(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagepb.SpaceResponse{Total: sp.Total, Free: sp.Free}, nil
}

func refFrom(r *storagepb.Ref) (Ref, error) {
	if r == nil || len(r.Index) != StorageIndexSize {
		return Ref{}, status.Errorf(codes.InvalidArgument, "storage index must be %d bytes", StorageIndexSize)
	}
	var ref Ref
	copy(ref.Index[:], r.Index)
	ref.Num = r.Num
	return ref, nil
}

func (s *server) Create(ctx context.Context, req *storagepb.CreateRequest) (*storagepb.CreateResponse, error) {
	ref, err := refFrom(req.Ref)
	if err != nil {
		return nil, err
	}
	if req.Size < 0 {
		return nil, toStatus(fmt.Errorf("create share %s of %d bytes: %w", ref, req.Size, ErrRange))
	}
	w, err := s.b.Create(ctx, ref, req.Size)
	if err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	s.next++
	h := s.next
	s.writers[h] = w
	s.mu.Unlock()
	return &storagepb.CreateResponse{Handle: h, FdId: s.handFile(w, req.FdId)}, nil
}

// handFile sends w's file to the host when it asked (fdID != 0) and w has
// one, and returns the id it was sent with, or 0: the host then writes by
// WriteAt as usual. The file goes before the answer, so the host's
// mailbox has it, or soon will, once the answer names it.
func (s *server) handFile(w Writer, fdID uint64) uint64 {
	if fdID == 0 || s.fds == nil {
		return 0
	}
	fw, ok := w.(FileWriter)
	if !ok {
		return 0
	}
	f, err := fw.File()
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := s.fds.Send(fdID, f); err != nil {
		return 0
	}
	return fdID
}

func (s *server) writer(h uint64) (Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[h]
	if !ok {
		return nil, toStatus(fmt.Errorf("writer %d: %w", h, ErrClosed))
	}
	return w, nil
}

// region returns the arena bytes a request names, bounds-checked: a bad
// offset is an error for the caller, never a fault in the plugin.
func (s *server) region(r *storagepb.Region) ([]byte, error) {
	if s.arena == nil {
		return nil, status.Error(codes.FailedPrecondition, "storage plugin has no shared-memory arena; send bytes instead")
	}
	if r.Off < 0 || r.Len < 0 || r.Off > int64(s.arena.Size()) || r.Len > int64(s.arena.Size()) {
		return nil, status.Errorf(codes.InvalidArgument, "region [%d,+%d) outside arena of %d bytes", r.Off, r.Len, s.arena.Size())
	}
	p, err := s.arena.Slice(int(r.Off), int(r.Len))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return p, nil
}

func (s *server) WriteAt(ctx context.Context, req *storagepb.WriteAtRequest) (*storagepb.Empty, error) {
	w, err := s.writer(req.Handle)
	if err != nil {
		return nil, err
	}
	var p []byte
	switch pl := req.Payload.(type) {
	case *storagepb.WriteAtRequest_Region:
		if p, err = s.region(pl.Region); err != nil {
			return nil, err
		}
	case *storagepb.WriteAtRequest_Data:
		p = pl.Data
	}
	return &storagepb.Empty{}, toStatus(w.WriteAt(ctx, p, req.Off))
}

// take removes a writer from the table: Seal and Abort end its handle
// whatever their outcome.
func (s *server) take(h uint64) (Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[h]
	if !ok {
		return nil, toStatus(fmt.Errorf("writer %d: %w", h, ErrClosed))
	}
	delete(s.writers, h)
	return w, nil
}

func (s *server) Seal(ctx context.Context, req *storagepb.HandleRequest) (*storagepb.Empty, error) {
	w, err := s.take(req.Handle)
	if err != nil {
		return nil, err
	}
	if err := w.Seal(ctx); err != nil {
		w.Abort(context.Background())
		return nil, toStatus(err)
	}
	return &storagepb.Empty{}, nil
}

// Put stores a whole share: with the backend's own Put when it has one,
// else Create, WriteAt and Seal here in the plugin, which still saves the
// host two round trips.
func (s *server) Put(ctx context.Context, req *storagepb.PutRequest) (*storagepb.Empty, error) {
	ref, err := refFrom(req.Ref)
	if err != nil {
		return nil, err
	}
	var p []byte
	switch pl := req.Payload.(type) {
	case *storagepb.PutRequest_Region:
		if p, err = s.region(pl.Region); err != nil {
			return nil, err
		}
	case *storagepb.PutRequest_Data:
		p = pl.Data
	}
	return &storagepb.Empty{}, toStatus(Put(ctx, s.b, ref, p))
}

// Open sends a sealed share's file to the host, which reads it itself.
func (s *server) Open(ctx context.Context, req *storagepb.OpenRequest) (*storagepb.OpenResponse, error) {
	ref, err := refFrom(req.Ref)
	if err != nil {
		return nil, err
	}
	o, ok := s.b.(Opener)
	if !ok || s.fds == nil || req.FdId == 0 {
		return nil, status.Error(codes.Unimplemented, "storage plugin cannot hand over share files")
	}
	f, size, err := o.Open(ctx, ref)
	if errors.Is(err, errors.ErrUnsupported) {
		// This share cannot be handed over (a packed share where there is
		// no sealed memfd): the host reads it with Stat and ReadAt.
		return nil, status.Error(codes.Unimplemented, err.Error())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	defer f.Close()
	if err := s.fds.Send(req.FdId, f); err != nil {
		return nil, status.Errorf(codes.Internal, "hand over share %s: %v", ref, err)
	}
	return &storagepb.OpenResponse{Size: size, FdId: req.FdId}, nil
}

func (s *server) Abort(ctx context.Context, req *storagepb.HandleRequest) (*storagepb.Empty, error) {
	w, err := s.take(req.Handle)
	if err != nil {
		return nil, err
	}
	return &storagepb.Empty{}, toStatus(w.Abort(ctx))
}

func (s *server) Stat(ctx context.Context, req *storagepb.Ref) (*storagepb.StatResponse, error) {
	ref, err := refFrom(req)
	if err != nil {
		return nil, err
	}
	n, err := s.b.Stat(ctx, ref)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagepb.StatResponse{Size: n}, nil
}

func (s *server) ReadAt(ctx context.Context, req *storagepb.ReadAtRequest) (*storagepb.ReadAtResponse, error) {
	ref, err := refFrom(req.Ref)
	if err != nil {
		return nil, err
	}
	var p []byte
	fast := req.Region != nil
	if fast {
		if p, err = s.region(req.Region); err != nil {
			return nil, err
		}
	} else {
		if req.Len < 0 || req.Len > pluginkit.ChunkSize {
			return nil, status.Errorf(codes.InvalidArgument, "read of %d bytes: at most %d per call", req.Len, pluginkit.ChunkSize)
		}
		p = make([]byte, req.Len)
	}
	n, err := s.b.ReadAt(ctx, ref, p, req.Off)
	eof := errors.Is(err, io.EOF)
	if err != nil && !eof {
		return nil, toStatus(err)
	}
	r := &storagepb.ReadAtResponse{N: int64(n), Eof: eof}
	if !fast {
		r.Data = p[:n]
	}
	return r, nil
}

func (s *server) List(ctx context.Context, req *storagepb.ListRequest) (*storagepb.ListResponse, error) {
	return s.list(ctx, req, s.b.List)
}

func (s *server) ListSlots(ctx context.Context, req *storagepb.ListRequest) (*storagepb.ListResponse, error) {
	return s.list(ctx, req, s.b.ListSlots)
}

func (s *server) list(ctx context.Context, req *storagepb.ListRequest, fn func(context.Context, [StorageIndexSize]byte) ([]uint32, error)) (*storagepb.ListResponse, error) {
	if len(req.Index) != StorageIndexSize {
		return nil, status.Errorf(codes.InvalidArgument, "storage index must be %d bytes", StorageIndexSize)
	}
	var idx [StorageIndexSize]byte
	copy(idx[:], req.Index)
	nums, err := fn(ctx, idx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storagepb.ListResponse{Nums: nums}, nil
}

func (s *server) Delete(ctx context.Context, req *storagepb.Ref) (*storagepb.Empty, error) {
	ref, err := refFrom(req)
	if err != nil {
		return nil, err
	}
	return &storagepb.Empty{}, toStatus(s.b.Delete(ctx, ref))
}

func (s *server) ReadSlot(req *storagepb.Ref, stream storagepb.Storage_ReadSlotServer) error {
	ref, err := refFrom(req)
	if err != nil {
		return err
	}
	v, tok, err := s.b.ReadSlot(stream.Context(), ref)
	if err != nil {
		return toStatus(err)
	}
	first := true
	for first || len(v) > 0 {
		n := min(len(v), pluginkit.ChunkSize)
		m := &storagepb.SlotChunk{Data: v[:n]}
		if first {
			m.Token = tok
			first = false
		}
		if err := stream.Send(m); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

func (s *server) WriteSlot(stream storagepb.Storage_WriteSlotServer) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	ref, err := refFrom(m.Ref)
	if err != nil {
		return err
	}
	expect := m.Expect
	val := append([]byte(nil), m.Data...)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		val = append(val, m.Data...)
	}
	tok, err := s.b.WriteSlot(stream.Context(), ref, expect, val)
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&storagepb.WriteSlotResponse{Token: tok})
}

// indexBatch is how many storage indexes go in one Indexes message.
const indexBatch = 4096

func (s *server) Indexes(_ *storagepb.Empty, stream storagepb.Storage_IndexesServer) error {
	ix, ok := s.b.(Indexer)
	if !ok {
		return status.Error(codes.Unimplemented, "storage backend cannot enumerate its indexes")
	}
	var batch [][]byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&storagepb.IndexesResponse{Indexes: batch})
		batch = nil
		return err
	}
	err := ix.Indexes(stream.Context(), func(idx [StorageIndexSize]byte) error {
		batch = append(batch, append([]byte(nil), idx[:]...))
		if len(batch) == indexBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return toStatus(err)
	}
	return flush()
}
