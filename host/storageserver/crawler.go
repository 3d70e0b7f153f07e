package storageserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/tarnfs/tarn/sdk/storage"
)

// Lease garbage collection. When Config.GC is on, a crawler walks every
// storage index of the backend (storage.Indexer) once per CrawlInterval,
// one index at a time with CrawlPause between them, so requests are never
// starved: it holds no lock while it sleeps and works on one index at a
// time. For each index with immutable shares:
//
//   - every lease expired: the shares are removed, then the lease records;
//   - no lease at all (a lease database lost or made before leases): a
//     grace lease of LeaseDuration is recorded instead, so nothing is
//     removed before its owners have had a full lease period to renew;
//   - nothing at all is removed before the lease floor, which a start
//     after an unclean stop sets past every lease the crashed run could
//     have acknowledged and lost (leasestate.go).
//
// Mutable slots are never removed (the backend contract has no slot
// delete); their leases are kept and renewed like any other.
//
// The decision and the removal run under gcMu's write lock, and Allocate
// and RenewLease hold its read lock from their look at the shares to the
// lease they add, so a share an upload was just told it has ("already
// have") cannot vanish under it.

// Crawler defaults for Config fields left zero.
const (
	DefaultCrawlInterval = time.Hour
	DefaultCrawlPause    = 10 * time.Millisecond
)

// graceOwner is the owner hash of grace leases.
var graceOwner [sha256.Size]byte

// CrawlStats are the crawler's counters.
type CrawlStats struct {
	Passes        int64     // passes completed
	LastPass      time.Time // when the last one ended
	Indexes       int64     // storage indexes looked at in the last pass
	Collected     int64     // storage indexes whose shares were removed, all passes
	SharesRemoved int64     // shares removed, all passes
	GraceLeases   int64     // grace leases given to unleased indexes, all passes
	// HeldByFloor counts storage indexes whose leases had all expired but
	// which were kept because the lease floor had not passed, all passes.
	HeldByFloor int64
	Floor       time.Time // the lease floor (zero: none)
}

// CrawlStats returns the crawler's counters.
func (s *Server) CrawlStats() CrawlStats {
	s.crawlMu.Lock()
	defer s.crawlMu.Unlock()
	st := s.crawl
	st.Floor = s.leases.floor()
	return st
}

// crawler runs passes until the server closes.
func (s *Server) crawler() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		if err := s.CrawlOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("lease crawler pass failed", "error", err)
		}
		select {
		case <-s.stop:
			return
		case <-time.After(s.cfg.CrawlInterval):
		}
	}
}

// CrawlOnce runs one garbage-collection pass now (tests, operators).
func (s *Server) CrawlOnce(ctx context.Context) error {
	ix, ok := s.cfg.Backend.(storage.Indexer)
	if !ok {
		return fmt.Errorf("lease crawler: the storage backend cannot list its storage indexes: %w", errors.ErrUnsupported)
	}
	var indexes []([storage.StorageIndexSize]byte)
	if err := ix.Indexes(ctx, func(index [storage.StorageIndexSize]byte) error {
		indexes = append(indexes, index)
		return nil
	}); err != nil {
		return fmt.Errorf("lease crawler: list storage indexes: %w", err)
	}
	for _, index := range indexes {
		if err := s.collect(ctx, index); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("lease crawler", "index", fmt.Sprintf("%x", index[:]), "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.cfg.CrawlPause):
		}
	}
	s.crawlMu.Lock()
	s.crawl.Passes++
	s.crawl.LastPass = s.cfg.Now()
	s.crawl.Indexes = int64(len(indexes))
	s.crawlMu.Unlock()
	return nil
}

// collect removes the shares of one index when all its leases expired.
func (s *Server) collect(ctx context.Context, index [storage.StorageIndexSize]byte) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	nums, err := s.cfg.Backend.List(ctx, index)
	if err != nil || len(nums) == 0 {
		return err // slots only, or gone
	}
	s.mu.Lock()
	for ref := range s.byRef {
		if ref.Index == index {
			s.mu.Unlock()
			return nil // an upload is writing here: its lease is fresh
		}
	}
	s.mu.Unlock()
	ls, err := s.leases.list(index)
	if err != nil {
		return fmt.Errorf("read leases: %w", err)
	}
	now := s.cfg.Now()
	if len(ls) == 0 {
		if err := s.leases.put(index, graceOwner, now.Add(s.cfg.LeaseDuration)); err != nil {
			return fmt.Errorf("grace lease: %w", err)
		}
		s.crawlMu.Lock()
		s.crawl.GraceLeases++
		s.crawlMu.Unlock()
		s.log.Info("shares without a lease: gave them a grace lease", "index", fmt.Sprintf("%x", index[:]), "shares", len(nums))
		return nil
	}
	for _, l := range ls {
		if l.Expires.After(now) {
			return nil
		}
	}
	if now.Before(s.leases.floor()) {
		// After an unclean stop a lease acknowledged may have been lost
		// (leasestate.go); every such lease expires by the floor.
		s.crawlMu.Lock()
		s.crawl.HeldByFloor++
		s.crawlMu.Unlock()
		return nil
	}
	var removed int64
	for _, n := range nums {
		err := s.removeShare(ctx, storage.Ref{Index: index, Num: n})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("remove share %d: %w", n, err)
		}
		removed++
	}
	s.fresh.forget(index)
	if err := s.leases.remove(index); err != nil {
		return fmt.Errorf("remove leases: %w", err)
	}
	s.crawlMu.Lock()
	s.crawl.Collected++
	s.crawl.SharesRemoved += removed
	s.crawlMu.Unlock()
	s.log.Info("removed shares whose leases all expired", "index", fmt.Sprintf("%x", index[:]), "shares", removed)
	return nil
}
