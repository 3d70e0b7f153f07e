package introducer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tarnfs/tarn/host/introducer/introducerpb"
	"github.com/tarnfs/tarn/host/nodelink"
)

// snapshotChunk bounds the records per Subscribe message, far below gRPC's
// 4 MiB limit at MaxRecordSize each.
const snapshotChunk = 128

// subscriberQueue is how many updates may wait for a slow subscriber before
// it is cut off (it reconnects and gets a fresh snapshot).
const subscriberQueue = 256

// ServiceConfig configures an introducer.
type ServiceConfig struct {
	// Grid is the grid's name; other grids' announcements are dropped.
	Grid string
	// GridSecret, when set, makes every RPC prove grid membership
	// (nodelink.CheckMembership), so outsiders can neither publish nor list.
	GridSecret []byte
	// StatePath, when set, is a file where accepted records are kept, so a
	// restarted introducer serves them at once.
	StatePath string
	Logger    hclog.Logger
	// MaxRecords bounds the records held (default 10000), so strangers
	// publishing under fresh keys cannot fill the introducer's memory.
	MaxRecords int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Service is the introducer service. Register it on a gRPC server (usually
// nodelink.NewServer).
type Service struct {
	introducerpb.UnimplementedIntroducerServer

	cfg ServiceConfig
	log hclog.Logger

	mu      sync.Mutex
	records map[string]*held // by Record.Key
	subs    map[*subscriber]struct{}
	dropped map[string]uint64 // by Reason
	accept  uint64
}

type held struct {
	rec Record
	sa  *introducerpb.SignedAnnouncement
}

type subscriber struct {
	service string
	ch      chan *introducerpb.SignedAnnouncement
	cut     chan struct{} // closed when the subscriber fell behind
}

var _ introducerpb.IntroducerServer = (*Service)(nil)

// NewService makes an introducer, loading StatePath when it is set (records
// that no longer verify are skipped).
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Grid == "" {
		return nil, errors.New("introducer: grid name is empty")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 10000
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger.Named("introducer"),
		records: map[string]*held{},
		subs:    map[*subscriber]struct{}{},
		dropped: map[string]uint64{},
	}
	if cfg.StatePath != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { introducerpb.RegisterIntroducerServer(g, s) }

// Stats counts records accepted and dropped (by Reason).
type Stats struct {
	Accepted uint64
	Dropped  map[string]uint64
	Held     int
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := make(map[string]uint64, len(s.dropped))
	for k, v := range s.dropped {
		d[k] = v
	}
	return Stats{Accepted: s.accept, Dropped: d, Held: len(s.records)}
}

// Records returns the current records, sorted by key.
func (s *Service) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	out := make([]Record, 0, len(s.records))
	for _, h := range s.records {
		out = append(out, h.rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

func (s *Service) checkMember(ctx context.Context) error {
	if s.cfg.GridSecret == nil {
		return nil
	}
	return nodelink.CheckMembership(ctx, s.cfg.GridSecret)
}

// Publish accepts one announcement.
func (s *Service) Publish(ctx context.Context, req *introducerpb.PublishRequest) (*introducerpb.PublishResponse, error) {
	if err := s.checkMember(ctx); err != nil {
		return nil, err
	}
	if err := s.offer(req.GetAnnouncement()); err != nil {
		code := codes.InvalidArgument
		switch {
		case errors.Is(err, ErrStale) || errors.Is(err, ErrExpired):
			code = codes.FailedPrecondition
		case errors.Is(err, ErrFull):
			code = codes.ResourceExhausted
		}
		return nil, status.Error(code, err.Error())
	}
	return &introducerpb.PublishResponse{}, nil
}

// offer verifies and stores a record and tells the subscribers.
func (s *Service) offer(sa *introducerpb.SignedAnnouncement) error {
	now := s.cfg.Now()
	r, err := Verify(sa, s.cfg.Grid, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	if err == nil {
		h, ok := s.records[r.Key()]
		switch {
		case ok && r.Sequence <= h.rec.Sequence:
			err = fmt.Errorf("announcement of %s: %w: sequence %d, holding %d", r.NodeID, ErrStale, r.Sequence, h.rec.Sequence)
		case !ok && len(s.records) >= s.cfg.MaxRecords:
			err = fmt.Errorf("announcement of %s: %w (%d records)", r.NodeID, ErrFull, s.cfg.MaxRecords)
		}
	}
	if err != nil {
		s.dropped[Reason(err)]++
		s.log.Warn("dropped announcement", "reason", Reason(err), "error", err)
		return err
	}
	s.accept++
	s.records[r.Key()] = &held{rec: r, sa: sa}
	s.log.Debug("accepted announcement", "node", r.NodeID, "service", r.Service, "seq", r.Sequence, "nickname", r.Nickname)
	for sub := range s.subs {
		if sub.service != "" && sub.service != r.Service {
			continue
		}
		select {
		case sub.ch <- sa:
		default:
			delete(s.subs, sub)
			close(sub.cut)
		}
	}
	if s.cfg.StatePath != "" {
		if err := s.saveLocked(); err != nil {
			// The record is held in memory and will be re-announced; a
			// failed save costs only the head start after a restart.
			s.log.Error("save announcements", "error", err)
		}
	}
	return nil
}

// pruneLocked forgets expired records.
func (s *Service) pruneLocked() {
	now := s.cfg.Now()
	for k, h := range s.records {
		if !now.Before(h.rec.ExpiresAt) {
			delete(s.records, k)
		}
	}
}

// Subscribe streams the current records, then updates.
func (s *Service) Subscribe(req *introducerpb.SubscribeRequest, stream grpc.ServerStreamingServer[introducerpb.SubscribeResponse]) error {
	if err := s.checkMember(stream.Context()); err != nil {
		return err
	}
	if req.GetGrid() != s.cfg.Grid {
		return status.Errorf(codes.InvalidArgument, "introducer serves grid %q, not %q", s.cfg.Grid, req.GetGrid())
	}
	sub := &subscriber{
		service: req.GetService(),
		ch:      make(chan *introducerpb.SignedAnnouncement, subscriberQueue),
		cut:     make(chan struct{}),
	}
	s.mu.Lock()
	s.pruneLocked()
	var snap []*introducerpb.SignedAnnouncement
	for _, h := range s.records {
		if sub.service == "" || sub.service == h.rec.Service {
			snap = append(snap, h.sa)
		}
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
		}
		s.mu.Unlock()
	}()

	for {
		n := min(len(snap), snapshotChunk)
		msg := &introducerpb.SubscribeResponse{Announcements: snap[:n], Synced: n == len(snap)}
		if err := stream.Send(msg); err != nil {
			return err
		}
		snap = snap[n:]
		if len(snap) == 0 {
			break
		}
	}
	for {
		select {
		case sa := <-sub.ch:
			if err := stream.Send(&introducerpb.SubscribeResponse{Announcements: []*introducerpb.SignedAnnouncement{sa}}); err != nil {
				return err
			}
		case <-sub.cut:
			return status.Error(codes.ResourceExhausted, "subscriber fell behind; subscribe again")
		case <-stream.Context().Done():
			return nil
		}
	}
}

// The state file is a SubscribeResponse holding every record: the same
// signed bytes as on the wire, so loading re-verifies them.
func (s *Service) saveLocked() error {
	msg := &introducerpb.SubscribeResponse{Synced: true}
	keys := make([]string, 0, len(s.records))
	for k := range s.records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		msg.Announcements = append(msg.Announcements, s.records[k].sa)
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	tmp := s.cfg.StatePath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.cfg.StatePath); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(s.cfg.StatePath)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (s *Service) load() error {
	b, err := os.ReadFile(s.cfg.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("introducer: load announcements: %w", err)
	}
	var msg introducerpb.SubscribeResponse
	if err := proto.Unmarshal(b, &msg); err != nil {
		// A damaged cache is not fatal: servers re-announce.
		s.log.Warn("ignoring damaged announcement file", "path", s.cfg.StatePath, "error", err)
		return nil
	}
	now := s.cfg.Now()
	for _, sa := range msg.Announcements {
		r, err := Verify(sa, s.cfg.Grid, now)
		if err != nil {
			continue
		}
		if h, ok := s.records[r.Key()]; !ok || r.Sequence > h.rec.Sequence {
			s.records[r.Key()] = &held{rec: r, sa: sa}
		}
	}
	s.log.Info("loaded announcements", "count", len(s.records))
	return nil
}
