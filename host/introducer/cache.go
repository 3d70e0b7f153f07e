package introducer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/atomicfile"
	"github.com/tarnfs/tarn/host/introducer/introducerpb"
)

// A client keeps the last announcements it verified in its private folder
// (as Tahoe-LAFS keeps private/servers.yaml), so a client restarted while
// its introducers are down still knows the grid's servers. The file holds
// the signed announcements as they came (a SubscribeResponse, as the
// introducer's own introducer.json), so loading verifies each one again:
// its signature by the server's own key, the node id and the address pins
// of that key, and the grid. Only the expiry is not held against them: a
// cached server is dialled, pinned to its key, until an introducer
// answers, and then the introducer's view replaces the cache.

// CacheFile is the name of the cached server list in a client's private
// folder.
const CacheFile = "servers.cache"

// MaxCacheSize bounds the cache file a client reads.
const MaxCacheSize = 4 << 20

// ErrCache is wrapped by errors reading a cache file that is damaged.
var ErrCache = errors.New("damaged server cache")

// EncodeCache makes the cache file's bytes from signed announcements,
// sorted so the same set gives the same bytes.
func EncodeCache(sas []*introducerpb.SignedAnnouncement) ([]byte, error) {
	sorted := append([]*introducerpb.SignedAnnouncement(nil), sas...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].Announcement, sorted[j].Announcement) < 0 })
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&introducerpb.SubscribeResponse{Announcements: sorted, Synced: true})
	if err != nil {
		return nil, fmt.Errorf("encode server cache: %w", err)
	}
	return b, nil
}

// SaveCache writes the announcements to path, mode 0600, whole or not at
// all.
func SaveCache(path string, sas []*introducerpb.SignedAnnouncement) error {
	b, err := EncodeCache(sas)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// ParseCache reads a cache file's bytes and returns the servers whose
// announcements verify for grid at now, expiry aside (see above), one per
// node (the newest), and how many were dropped and why.
func ParseCache(b []byte, grid string, now time.Time) ([]Server, map[string]int, error) {
	if len(b) > MaxCacheSize {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCache, len(b), MaxCacheSize)
	}
	var msg introducerpb.SubscribeResponse
	if err := proto.Unmarshal(b, &msg); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCache, err)
	}
	dropped := map[string]int{}
	byID := map[string]Record{}
	for _, sa := range msg.GetAnnouncements() {
		r, err := openAt(sa, now, false)
		if err == nil && r.Grid != grid {
			err = fmt.Errorf("announcement of %s: %w %q (this is %q)", r.NodeID, ErrOtherGrid, r.Grid, grid)
		}
		if err == nil && r.Service != ServiceStorage {
			err = fmt.Errorf("announcement of %s: %w: service %q", r.NodeID, ErrMalformed, r.Service)
		}
		if err != nil {
			dropped[Reason(err)]++
			continue
		}
		if old, ok := byID[r.NodeID]; !ok || r.Sequence > old.Sequence {
			byID[r.NodeID] = r
		}
	}
	out := make([]Server, 0, len(byID))
	for _, r := range byID {
		s := serverOf(r)
		s.Cached = true
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, dropped, nil
}

// LoadCache reads the cache file at path (see ParseCache); a missing file
// is no servers and no error.
func LoadCache(path, grid string, now time.Time) ([]Server, map[string]int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read server cache: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxCacheSize+1)); err != nil {
		return nil, nil, fmt.Errorf("read server cache %s: %w", path, err)
	}
	s, d, err := ParseCache(buf.Bytes(), grid, now)
	if err != nil {
		return nil, nil, fmt.Errorf("server cache %s: %w", path, err)
	}
	return s, d, nil
}

// saveCache keeps the subscriber's cache file up to date with the list's
// verified announcements, while an introducer's view is in force (a
// client whose introducers are down or refuse it keeps its last cache). It
// writes as soon as an introducer's snapshot arrives, then at most once
// per cacheEvery, and only when the set changed.
func (s *Subscriber) saveCache(ctx context.Context) {
	var last []byte
	for {
		ch := s.cfg.List.Changed()
		s.mu.Lock()
		synced := s.synced > 0
		s.mu.Unlock()
		wrote := false
		if synced {
			b, err := EncodeCache(s.cfg.List.Signed())
			if err == nil && !bytes.Equal(b, last) {
				err = atomicfile.WriteFile(s.cfg.CacheFile, b, 0o600)
				if err == nil {
					last, wrote = b, true
					s.log.Debug("saved the server cache", "path", s.cfg.CacheFile)
				}
			}
			if err != nil {
				s.log.Warn("save the server cache", "path", s.cfg.CacheFile, "error", err)
			}
		}
		// Changes meanwhile close ch: they are written after the pause.
		if wrote && !sleep(ctx, s.cacheEvery()) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-s.syncKick:
		}
	}
}

func (s *Subscriber) cacheEvery() time.Duration {
	if s.cfg.CacheEvery > 0 {
		return s.cfg.CacheEvery
	}
	return 2 * time.Second
}

// loadCache seeds the list with the cached servers.
func (s *Subscriber) loadCache() {
	servers, dropped, err := LoadCache(s.cfg.CacheFile, s.cfg.Grid, s.cfg.Now())
	if err != nil {
		// Not fatal: the introducers give the list; the file is rewritten.
		s.log.Warn("ignoring the server cache", "error", err)
		return
	}
	if len(dropped) > 0 {
		s.log.Warn("dropped cached announcements", "dropped", fmt.Sprint(dropped))
	}
	if len(servers) == 0 {
		return
	}
	s.cfg.List.Seed(servers)
	s.log.Info("using the cached server list until an introducer answers", "servers", len(servers), "path", s.cfg.CacheFile)
}
