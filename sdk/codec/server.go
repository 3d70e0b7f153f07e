package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tarnfs/tarn/sdk/codec/codecpb"
	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// Limits a plugin enforces on requests, so that a bad request costs an error
// rather than memory.
const (
	// MaxBatch is the most segments one shared-memory call carries.
	MaxBatch = 64
	// MaxStreamSegment is the largest segment the streaming fallback takes.
	MaxStreamSegment = 256 << 20
)

// server is the plugin side of tarn.codec.v1 around a Codec.
type server struct {
	codecpb.UnimplementedCodecServer
	impl  Codec
	arena *dataplane.Arena // nil: the fast path is not available
}

// NewServer returns the plugin side of tarn.codec.v1 around impl, for
// registering on a gRPC server of one's own (Serve does this for a go-plugin
// process). arena is the mapped shared memory, or nil for streaming only.
func NewServer(impl Codec, arena *dataplane.Arena) codecpb.CodecServer {
	return &server{impl: impl, arena: arena}
}

func (s *server) Info(ctx context.Context, _ *codecpb.InfoRequest) (*codecpb.InfoResponse, error) {
	var in Info
	err := guard("info", func() error {
		var err error
		in, err = s.impl.Info(ctx)
		return err
	})
	if err != nil {
		return nil, toStatus(err, 0)
	}
	r := &codecpb.InfoResponse{
		Name:            in.Name,
		Version:         in.Version,
		MaxN:            uint32(max(0, in.MaxN)),
		ProtocolVersion: ProtocolVersion,
		MaxBatch:        MaxBatch,
	}
	if s.arena != nil {
		r.ArenaMapped = true
		r.ArenaSize = uint64(s.arena.Size())
	}
	return r, nil
}

func (s *server) Configure(ctx context.Context, req *codecpb.ConfigureRequest) (*codecpb.ConfigureResponse, error) {
	err := guard("configure", func() error { return configure(ctx, s.impl, req.SettingsJson) })
	if err != nil {
		return nil, toStatus(err, 0)
	}
	return &codecpb.ConfigureResponse{}, nil
}

// configure passes settings to a Configurer; a codec without settings takes
// only an empty object.
func configure(ctx context.Context, impl Codec, settings []byte) error {
	if c, ok := impl.(pluginkit.Configurer); ok {
		return c.Configure(ctx, settings)
	}
	switch string(bytes.TrimSpace(settings)) {
	case "", "{}", "null":
		return nil
	}
	return fmt.Errorf("%w: this codec takes no settings, got %.60s", ErrUnsupported, settings)
}

// slice bounds-checks a span against the arena.
func (s *server) slice(sp *codecpb.Span) ([]byte, error) {
	off, n, err := spanInts(sp)
	if err != nil {
		return nil, err
	}
	b, err := s.arena.Slice(off, n)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return b, nil
}

func (s *server) checkShared(p *codecpb.Params, jobs int) (Params, error) {
	if s.arena == nil {
		return Params{}, fmt.Errorf("%w: shared memory not mapped by this plugin, use the streaming calls", ErrUnsupported)
	}
	if jobs > MaxBatch {
		return Params{}, fmt.Errorf("%w: batch of %d segments, at most %d", ErrInvalidInput, jobs, MaxBatch)
	}
	return paramsFromWire(p)
}

func (s *server) EncodeShared(ctx context.Context, req *codecpb.EncodeSharedRequest) (*codecpb.EncodeSharedResponse, error) {
	p, err := s.checkShared(req.Params, len(req.Jobs))
	if err != nil {
		return nil, toStatus(err, 0)
	}
	blocks := make([][]byte, p.N)
	for i, j := range req.Jobs {
		if err := s.encodeJob(ctx, p, j, blocks); err != nil {
			if len(req.Jobs) > 1 {
				err = fmt.Errorf("segment %d of batch: %w", i, err)
			}
			return nil, toStatus(err, i)
		}
	}
	return &codecpb.EncodeSharedResponse{}, nil
}

func (s *server) encodeJob(ctx context.Context, p Params, j *codecpb.EncodeJob, blocks [][]byte) error {
	seg, err := s.slice(j.Segment)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	if len(j.Blocks) != p.N {
		return fmt.Errorf("%w: %d block spans, want N=%d", ErrInvalidInput, len(j.Blocks), p.N)
	}
	for k, sp := range j.Blocks {
		if blocks[k], err = s.slice(sp); err != nil {
			return fmt.Errorf("block %d: %w", k, err)
		}
	}
	// The contract is enforced here too, so a codec that skips its own
	// checks still never sees a malformed request.
	if err := CheckEncode(p, seg, blocks); err != nil {
		return err
	}
	return guard("encode", func() error { return s.impl.Encode(ctx, p, seg, blocks) })
}

func (s *server) DecodeShared(ctx context.Context, req *codecpb.DecodeSharedRequest) (*codecpb.DecodeSharedResponse, error) {
	p, err := s.checkShared(req.Params, len(req.Jobs))
	if err != nil {
		return nil, toStatus(err, 0)
	}
	blocks := make([][]byte, p.N)
	for i, j := range req.Jobs {
		clear(blocks)
		if err := s.decodeJob(ctx, p, j, blocks); err != nil {
			if len(req.Jobs) > 1 {
				err = fmt.Errorf("segment %d of batch: %w", i, err)
			}
			return nil, toStatus(err, i)
		}
	}
	return &codecpb.DecodeSharedResponse{}, nil
}

func (s *server) decodeJob(ctx context.Context, p Params, j *codecpb.DecodeJob, blocks [][]byte) error {
	out, err := s.slice(j.Out)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	if len(j.Blocks) > p.N {
		return fmt.Errorf("%w: %d blocks given, N=%d", ErrInvalidInput, len(j.Blocks), p.N)
	}
	for _, b := range j.Blocks {
		if b.Index >= uint32(p.N) {
			return fmt.Errorf("%w: block number %d, N=%d", ErrInvalidInput, b.Index, p.N)
		}
		if blocks[b.Index] != nil {
			return fmt.Errorf("%w: block %d given twice", ErrInvalidInput, b.Index)
		}
		if blocks[b.Index], err = s.slice(b.Span); err != nil {
			return fmt.Errorf("block %d: %w", b.Index, err)
		}
	}
	if err := CheckDecode(p, blocks, out); err != nil {
		return err
	}
	return guard("decode", func() error { return s.impl.Decode(ctx, p, blocks, out) })
}

func (s *server) Encode(stream codecpb.Codec_EncodeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return toStatus(fmt.Errorf("encode stream: %w", err), 0)
	}
	h := first.GetHeader()
	if h == nil {
		return toStatus(fmt.Errorf("%w: encode stream does not start with a header", ErrInvalidInput), 0)
	}
	p, err := paramsFromWire(h.Params)
	if err != nil {
		return toStatus(err, 0)
	}
	if h.SegmentLength == 0 || h.SegmentLength > MaxStreamSegment {
		return toStatus(fmt.Errorf("%w: segment of %d bytes, want 1 to %d", ErrInvalidInput, h.SegmentLength, MaxStreamSegment), 0)
	}
	seg := make([]byte, 0, h.SegmentLength)
	for uint64(len(seg)) < h.SegmentLength {
		m, err := stream.Recv()
		if err != nil {
			return toStatus(fmt.Errorf("%w: segment stream ended after %d of %d bytes: %v", ErrInvalidInput, len(seg), h.SegmentLength, err), 0)
		}
		c := m.GetChunk()
		if c == nil || uint64(len(seg)+len(c)) > h.SegmentLength {
			return toStatus(fmt.Errorf("%w: segment stream does not match its %d-byte header", ErrInvalidInput, h.SegmentLength), 0)
		}
		seg = append(seg, c...)
	}
	bs := BlockSize(p, len(seg))
	backing := make([]byte, bs*p.N)
	blocks := make([][]byte, p.N)
	for i := range blocks {
		blocks[i] = backing[i*bs : (i+1)*bs : (i+1)*bs]
	}
	if err := guard("encode", func() error { return s.impl.Encode(ctx, p, seg, blocks) }); err != nil {
		return toStatus(err, 0)
	}
	for i, b := range blocks {
		for len(b) > 0 {
			n := min(len(b), pluginkit.ChunkSize)
			if err := stream.Send(&codecpb.BlockChunk{Index: uint32(i), Data: b[:n]}); err != nil {
				return err
			}
			b = b[n:]
		}
	}
	return nil
}

func (s *server) Decode(stream codecpb.Codec_DecodeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return toStatus(fmt.Errorf("decode stream: %w", err), 0)
	}
	h := first.GetHeader()
	if h == nil {
		return toStatus(fmt.Errorf("%w: decode stream does not start with a header", ErrInvalidInput), 0)
	}
	p, err := paramsFromWire(h.Params)
	if err != nil {
		return toStatus(err, 0)
	}
	if h.SegmentLength == 0 || h.SegmentLength > MaxStreamSegment {
		return toStatus(fmt.Errorf("%w: segment of %d bytes, want 1 to %d", ErrInvalidInput, h.SegmentLength, MaxStreamSegment), 0)
	}
	if len(h.Present) > p.N {
		return toStatus(fmt.Errorf("%w: %d blocks announced, N=%d", ErrInvalidInput, len(h.Present), p.N), 0)
	}
	bs := BlockSize(p, int(h.SegmentLength))
	blocks := make([][]byte, p.N)
	pending := 0
	for _, ix := range h.Present {
		if ix >= uint32(p.N) || blocks[ix] != nil {
			return toStatus(fmt.Errorf("%w: block number %d announced twice or beyond N=%d", ErrInvalidInput, ix, p.N), 0)
		}
		blocks[ix] = []byte{} // present; filled as chunks arrive
		pending++
	}
	if pending < p.K {
		return toStatus(fmt.Errorf("decode %d-byte segment: %d of %d blocks present, need K=%d: %w",
			h.SegmentLength, pending, p.N, p.K, ErrTooFewBlocks), 0)
	}
	for pending > 0 {
		m, err := stream.Recv()
		if err != nil {
			return toStatus(fmt.Errorf("%w: block stream ended with %d blocks incomplete: %v", ErrInvalidInput, pending, err), 0)
		}
		c := m.GetBlock()
		if c == nil || c.Index >= uint32(p.N) || blocks[c.Index] == nil || len(c.Data) == 0 || len(blocks[c.Index])+len(c.Data) > bs {
			return toStatus(fmt.Errorf("%w: block chunk does not match the header (want %d bytes per block)", ErrInvalidInput, bs), 0)
		}
		b := blocks[c.Index]
		if cap(b) == 0 {
			b = make([]byte, 0, bs)
		}
		b = append(b, c.Data...)
		blocks[c.Index] = b
		if len(b) == bs {
			pending--
		}
	}
	out := make([]byte, h.SegmentLength)
	if err := guard("decode", func() error { return s.impl.Decode(ctx, p, blocks, out) }); err != nil {
		return toStatus(err, 0)
	}
	for b := out; len(b) > 0; {
		n := min(len(b), pluginkit.ChunkSize)
		if err := stream.Send(&codecpb.SegmentChunk{Data: b[:n]}); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// errPanic marks a codec implementation that panicked; the plugin answers
// with an error and keeps serving.
var errPanic = errors.New("codec implementation panicked")

// guard runs a call into the codec implementation, turning a panic into an
// error so that one bad call never takes the plugin process down.
func guard(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %w: %v", what, errPanic, r)
		}
	}()
	return f()
}

var _ codecpb.CodecServer = (*server)(nil)
