package storageserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tarnfs/tarn/host/storageserver/storageserverpb"
	"github.com/tarnfs/tarn/sdk/storage"
)

// Held is what a server holds: sealed shares (mutable slots aside) and
// their bytes. It is a count of the backend made in the background at
// start, plus the shares sealed and removed since, so reading it costs
// nothing however many shares there are.
type Held struct {
	Shares, Bytes int64
	// Counting: the start count has not finished; Shares and Bytes are
	// what it counted so far plus the changes since start.
	Counting bool
	// Err, when set, is why the start count failed or cannot be made
	// (a backend that cannot list its storage indexes); Shares and Bytes
	// are then only the changes since start.
	Err error
}

type heldDelta struct{ shares, bytes int64 }

// heldCount keeps Held. The start count takes the storage indexes in
// order; while it runs, a change to an index after its cursor waits in
// pending: the count of that index sees it (it lists the backend after
// the change), so the change is dropped then; changes to indexes it never
// reaches (new ones) are added when it ends. A change in the instant its
// index is being counted may be counted twice or missed, during the start
// count only. Beside the list of indexes (16 bytes each) the count keeps
// nothing per index.
type heldCount struct {
	mu       sync.Mutex
	n        heldDelta
	counting bool
	err      error
	cursor   [storage.StorageIndexSize]byte // the last index counted
	moved    bool                           // whether cursor is set
	pending  map[[storage.StorageIndexSize]byte]heldDelta
}

// counted reports whether the start count is past index.
func (h *heldCount) counted(index [storage.StorageIndexSize]byte) bool {
	return !h.counting || (h.moved && bytes.Compare(index[:], h.cursor[:]) <= 0)
}

// Held returns the shares and bytes the server holds.
func (s *Server) Held() Held {
	h := &s.held
	h.mu.Lock()
	defer h.mu.Unlock()
	return Held{Shares: h.n.shares, Bytes: h.n.bytes, Counting: h.counting, Err: h.err}
}

// heldAdd records shares sealed (positive) or removed (negative) at index.
func (s *Server) heldAdd(index [storage.StorageIndexSize]byte, shares, bytes int64) {
	h := &s.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.counted(index) {
		d := h.pending[index]
		h.pending[index] = heldDelta{d.shares + shares, d.bytes + bytes}
		return
	}
	h.n.shares += shares
	h.n.bytes += bytes
}

// startHeldCount counts the backend's shares in the background; Close
// stops it.
func (s *Server) startHeldCount() {
	ix, ok := s.cfg.Backend.(storage.Indexer)
	h := &s.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if !ok {
		h.err = fmt.Errorf("count shares held: the storage backend cannot list its storage indexes: %w", errors.ErrUnsupported)
		return
	}
	h.counting = true
	h.pending = map[[storage.StorageIndexSize]byte]heldDelta{}
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		defer cancel()
		start := time.Now()
		err := s.countHeld(ctx, ix)
		h.mu.Lock()
		for _, d := range h.pending {
			h.n.shares += d.shares
			h.n.bytes += d.bytes
		}
		h.counting, h.pending = false, nil
		if err != nil {
			h.err = fmt.Errorf("count shares held: %w", err)
		}
		n := h.n
		h.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.log.Error("count shares held", "error", err)
		} else if err == nil {
			s.log.Info("counted shares held", "shares", n.shares, "bytes", n.bytes, "took", time.Since(start).Round(time.Millisecond))
		}
	}()
	go func() {
		defer s.wg.Done()
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// countHeld lists every storage index, then each index's shares and
// their sizes: one backend call per index and per share, in the
// background.
func (s *Server) countHeld(ctx context.Context, ix storage.Indexer) error {
	var indexes [][storage.StorageIndexSize]byte
	if err := ix.Indexes(ctx, func(index [storage.StorageIndexSize]byte) error {
		indexes = append(indexes, index)
		return nil
	}); err != nil {
		return fmt.Errorf("list storage indexes: %w", err)
	}
	slices.SortFunc(indexes, func(a, b [storage.StorageIndexSize]byte) int { return bytes.Compare(a[:], b[:]) })
	h := &s.held
	for _, index := range indexes {
		nums, err := s.cfg.Backend.List(ctx, index)
		if err != nil {
			return fmt.Errorf("list shares of %x: %w", index[:], err)
		}
		var bytes, shares int64
		for _, n := range nums {
			size, err := s.cfg.Backend.Stat(ctx, storage.Ref{Index: index, Num: n})
			if errors.Is(err, storage.ErrNotFound) {
				continue // removed since the list
			}
			if err != nil {
				return fmt.Errorf("size of share %d of %x: %w", n, index[:], err)
			}
			shares++
			bytes += size
		}
		h.mu.Lock()
		delete(h.pending, index) // the listing has those changes
		h.cursor, h.moved = index, true
		h.n.shares += shares
		h.n.bytes += bytes
		h.mu.Unlock()
	}
	return nil
}

// removeShare deletes a sealed share and counts it out of Held.
func (s *Server) removeShare(ctx context.Context, ref storage.Ref) error {
	size, err := s.cfg.Backend.Stat(ctx, ref)
	if err != nil {
		return err
	}
	if err := s.cfg.Backend.Delete(ctx, ref); err != nil {
		return err
	}
	s.heldAdd(ref.Index, -1, -size)
	return nil
}

// OnNoSpace sets fn to be called (from the call's goroutine; it must not
// block) whenever the server refuses a share or slot for lack of space
// (its reserve, or the backend's ErrNoSpace) or tells a client it has no
// room (GetVersion with nothing available: the client places elsewhere
// without asking). A storage node re-announces its free space then
// (introducer.SpaceWatch.Refused), so other clients learn it too.
func (s *Server) OnNoSpace(fn func()) { s.noSpace.Store(&fn) }

func (s *Server) refusedSpace() {
	if fn := s.noSpace.Load(); fn != nil {
		(*fn)()
	}
}

// observeUnary sees every unary call's outcome: a refusal for lack of
// space (or a version answer with no room) is passed to OnNoSpace.
// (Whole-share puts count their shares into Held in putMany, where a put
// that fails after storing some still counts them.)
func (s *Server) observeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if status.Code(err) == codes.ResourceExhausted {
		s.refusedSpace()
	}
	switch r := resp.(type) {
	case *pb.GetVersionResponse:
		if r.GetAvailable() <= 0 {
			s.refusedSpace()
		}
	case *pb.PutSharesBatchResponse:
		for _, res := range r.GetResults() {
			if codes.Code(res.GetCode()) == codes.ResourceExhausted {
				s.refusedSpace()
				break
			}
		}
	}
	return resp, err
}
