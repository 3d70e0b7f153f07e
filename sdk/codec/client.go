package codec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tarnfs/tarn/sdk/codec/codecpb"
	"github.com/tarnfs/tarn/sdk/dataplane"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// Client is the host's side of a codec plugin: it implements Codec (and
// BatchCodec and pluginkit.Configurer) over tarn.codec.v1.
//
// Each call takes the shared-memory path when the host offered an arena and
// the plugin's Info says it mapped the same one; otherwise, or when the arena
// is full, it streams the bytes over gRPC. Buffers from AllocBuffers already
// lie in the arena and cost no copy; other buffers are copied in and out of a
// staging region of the arena.
//
// When a call's context ends first, the call returns ctx.Err() at once but
// the plugin may still be writing the buffers it was given: their contents
// are undefined until released. Arena memory is never handed out again
// while a plugin may still write it.
type Client struct {
	rpc   codecpb.CodecClient
	arena *dataplane.Arena // the host's mapping; nil when not offered

	mu       sync.Mutex
	info     *codecpb.InfoResponse // cached after the first successful Info
	detached int                   // cancelled shared calls still running
	deferred []dataplane.Region    // Buffers released while detached > 0
}

var (
	_ Codec                = (*Client)(nil)
	_ BatchCodec           = (*Client)(nil)
	_ pluginkit.Configurer = (*Client)(nil)
)

// NewClient wraps a tarn.codec.v1 connection. arena is the arena offered to
// the plugin process, or nil.
func NewClient(rpc codecpb.CodecClient, arena *dataplane.Arena) *Client {
	return &Client{rpc: rpc, arena: arena}
}

// ClientOf returns the codec client of a plugin process started with
// pluginkit.Start and NewHostPlugin.
func ClientOf(p *pluginkit.Process) (*Client, error) {
	c, ok := p.Raw.(*Client)
	if !ok {
		return nil, fmt.Errorf("codec plugin: process dispensed a %T, not a codec client", p.Raw)
	}
	return c, nil
}

func (c *Client) remoteInfo(ctx context.Context) (*codecpb.InfoResponse, error) {
	c.mu.Lock()
	in := c.info
	c.mu.Unlock()
	if in != nil {
		return in, nil
	}
	in, err := c.rpc.Info(ctx, &codecpb.InfoRequest{})
	if err != nil {
		return nil, fromStatus("info", err)
	}
	if in.ProtocolVersion != ProtocolVersion {
		return nil, fmt.Errorf("codec plugin %q speaks tarn.codec.v%d, this host speaks v%d", in.Name, in.ProtocolVersion, ProtocolVersion)
	}
	c.mu.Lock()
	c.info = in
	c.mu.Unlock()
	return in, nil
}

// Info asks the plugin who it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	in, err := c.remoteInfo(ctx)
	if err != nil {
		return Info{}, err
	}
	return Info{Name: in.Name, Version: in.Version, MaxN: int(in.MaxN)}, nil
}

// FastPath reports whether calls go through shared memory.
func (c *Client) FastPath(ctx context.Context) (bool, error) {
	in, err := c.remoteInfo(ctx)
	if err != nil {
		return false, err
	}
	return c.arena != nil && in.ArenaMapped && in.ArenaSize == uint64(c.arena.Size()), nil
}

// Configure hands the plugin its settings (a JSON object).
func (c *Client) Configure(ctx context.Context, settingsJSON []byte) error {
	_, err := c.rpc.Configure(ctx, &codecpb.ConfigureRequest{SettingsJson: settingsJSON})
	return fromStatus("configure", err)
}

// Encode fills blocks from segment in the plugin.
func (c *Client) Encode(ctx context.Context, p Params, segment []byte, blocks [][]byte) error {
	return c.EncodeBatch(ctx, p, []EncodeJob{{Segment: segment, Blocks: blocks}})
}

// Decode rebuilds out from blocks in the plugin.
func (c *Client) Decode(ctx context.Context, p Params, blocks [][]byte, out []byte) error {
	return c.DecodeBatch(ctx, p, []DecodeJob{{Blocks: blocks, Out: out}})
}

// EncodeBatch encodes several segments, in one call per MaxBatch segments on
// the shared-memory path.
func (c *Client) EncodeBatch(ctx context.Context, p Params, jobs []EncodeJob) error {
	for i, j := range jobs {
		if err := CheckEncode(p, j.Segment, j.Blocks); err != nil {
			return batchErr(len(jobs), i, err)
		}
	}
	fast, err := c.FastPath(ctx)
	if err != nil {
		return err
	}
	for start := 0; start < len(jobs); {
		part := jobs[start:min(len(jobs), start+c.maxBatch())]
		err := errArenaFull
		if fast {
			err = c.encodeShared(ctx, p, part)
			for errors.Is(err, errArenaFull) && len(part) > 1 {
				part = part[:len(part)/2] // stage fewer segments at once
				err = c.encodeShared(ctx, p, part)
			}
		}
		if errors.Is(err, errArenaFull) {
			// No room to stage this batch: stream it instead.
			err = nil
			for i, j := range part {
				if err = c.encodeStream(ctx, p, j); err != nil {
					err = batchErr(len(jobs), start+i, err)
					break
				}
			}
		} else if err != nil && len(jobs) > 1 {
			err = fmt.Errorf("segments %d-%d of batch: %w", start, start+len(part)-1, err)
		}
		if err != nil {
			return err
		}
		start += len(part)
	}
	return nil
}

// DecodeBatch decodes several segments, in one call per MaxBatch segments on
// the shared-memory path.
func (c *Client) DecodeBatch(ctx context.Context, p Params, jobs []DecodeJob) error {
	for i, j := range jobs {
		if err := CheckDecode(p, j.Blocks, j.Out); err != nil {
			return batchErr(len(jobs), i, err)
		}
	}
	fast, err := c.FastPath(ctx)
	if err != nil {
		return err
	}
	for start := 0; start < len(jobs); {
		part := jobs[start:min(len(jobs), start+c.maxBatch())]
		err := errArenaFull
		if fast {
			err = c.decodeShared(ctx, p, part)
			for errors.Is(err, errArenaFull) && len(part) > 1 {
				part = part[:len(part)/2]
				err = c.decodeShared(ctx, p, part)
			}
		}
		if errors.Is(err, errArenaFull) {
			err = nil
			for i, j := range part {
				if err = c.decodeStream(ctx, p, j); err != nil {
					err = batchErr(len(jobs), start+i, err)
					break
				}
			}
		} else if err != nil && len(jobs) > 1 {
			err = fmt.Errorf("segments %d-%d of batch: %w", start, start+len(part)-1, err)
		}
		if err != nil {
			return err
		}
		start += len(part)
	}
	return nil
}

func batchErr(n, i int, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("segment %d of batch: %w", i, err)
}

func (c *Client) maxBatch() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info == nil || c.info.MaxBatch == 0 {
		return 1
	}
	return int(min(c.info.MaxBatch, MaxBatch))
}

// errArenaFull says a call could not be staged in shared memory; the caller
// streams it instead.
var errArenaFull = errors.New("codec: arena full")

// staging places buffers in the arena: those already inside it are used in
// place, the others get a slice of one staging region.
type staging struct {
	arena  *dataplane.Arena
	need   int // bytes to stage
	used   int // bytes of region handed out by place
	region dataplane.Region
}

// stageAlign keeps staged buffers on cache-line boundaries for SIMD codecs.
const stageAlign = 64

func alignUp(n int) int { return (n + stageAlign - 1) &^ (stageAlign - 1) }

// count notes a buffer that will need staging.
func (s *staging) count(b []byte) {
	if _, ok := s.arena.Offset(b); !ok {
		s.need += alignUp(len(b))
	}
}

func (s *staging) alloc() error {
	if s.need == 0 {
		return nil
	}
	r, err := s.arena.Alloc(s.need)
	if errors.Is(err, dataplane.ErrArenaFull) {
		return errArenaFull
	}
	if err != nil {
		return fmt.Errorf("codec plugin: stage %d bytes in shared memory: %w", s.need, err)
	}
	s.region = r
	return nil
}

// place returns the span of b, staging it if it is not in the arena; in
// says whether b's bytes must be copied in. It returns the staged buffer
// (or nil when b is used in place) for copying results out.
func (s *staging) place(b []byte, in bool) (*codecpb.Span, []byte) {
	if off, ok := s.arena.Offset(b); ok {
		return &codecpb.Span{Offset: uint64(off), Length: uint64(len(b))}, nil
	}
	st := s.region.Bytes[s.used : s.used+len(b)]
	off := s.region.Off + s.used
	s.used += alignUp(len(b))
	if in {
		copy(st, b)
	}
	return &codecpb.Span{Offset: uint64(off), Length: uint64(len(b))}, st
}

func (s *staging) free() { s.arena.Free(s.region) }

func (c *Client) encodeShared(ctx context.Context, p Params, jobs []EncodeJob) error {
	st := staging{arena: c.arena}
	for _, j := range jobs {
		st.count(j.Segment)
		for _, b := range j.Blocks {
			st.count(b)
		}
	}
	if err := st.alloc(); err != nil {
		return err
	}
	type out struct{ dst, src []byte }
	var outs []out
	req := &codecpb.EncodeSharedRequest{Params: wireParams(p), Jobs: make([]*codecpb.EncodeJob, len(jobs))}
	for i, j := range jobs {
		wj := &codecpb.EncodeJob{Blocks: make([]*codecpb.Span, len(j.Blocks))}
		wj.Segment, _ = st.place(j.Segment, true)
		for k, b := range j.Blocks {
			var staged []byte
			wj.Blocks[k], staged = st.place(b, false)
			if staged != nil {
				outs = append(outs, out{b, staged})
			}
		}
		req.Jobs[i] = wj
	}
	copyOut := func() {
		for _, o := range outs {
			copy(o.dst, o.src)
		}
	}
	err := c.shared(ctx, copyOut, st.free, func(ctx context.Context) error {
		_, err := c.rpc.EncodeShared(ctx, req)
		return err
	})
	return fromStatus("encode", err)
}

func (c *Client) decodeShared(ctx context.Context, p Params, jobs []DecodeJob) error {
	st := staging{arena: c.arena}
	for _, j := range jobs {
		st.count(j.Out)
		for _, b := range j.Blocks {
			if b != nil {
				st.count(b)
			}
		}
	}
	if err := st.alloc(); err != nil {
		return err
	}
	type out struct{ dst, src []byte }
	var outs []out
	req := &codecpb.DecodeSharedRequest{Params: wireParams(p), Jobs: make([]*codecpb.DecodeJob, len(jobs))}
	for i, j := range jobs {
		wj := &codecpb.DecodeJob{}
		var staged []byte
		wj.Out, staged = st.place(j.Out, false)
		if staged != nil {
			outs = append(outs, out{j.Out, staged})
		}
		for k, b := range j.Blocks {
			if b == nil {
				continue
			}
			sp, _ := st.place(b, true)
			wj.Blocks = append(wj.Blocks, &codecpb.SharedBlock{Index: uint32(k), Span: sp})
		}
		req.Jobs[i] = wj
	}
	copyOut := func() {
		for _, o := range outs {
			copy(o.dst, o.src)
		}
	}
	err := c.shared(ctx, copyOut, st.free, func(ctx context.Context) error {
		_, err := c.rpc.DecodeShared(ctx, req)
		return err
	})
	return fromStatus("decode", err)
}

// shared runs one shared-memory call. The plugin may write arena memory
// until it answers, even after the caller's context ends, so the call itself
// never sees the caller's cancellation: the caller gets ctx.Err() at once,
// while the call runs on, and the arena memory it uses (its staging region,
// and any Buffers released meanwhile) is freed only once the plugin has
// answered or died. On success copyOut copies staged results to the
// caller's buffers (never after the caller has gone); done frees the staging
// region.
func (c *Client) shared(ctx context.Context, copyOut, done func(), call func(context.Context) error) error {
	if ctx.Done() == nil {
		defer done()
		err := call(ctx)
		if err == nil {
			copyOut()
		}
		return err
	}
	result := make(chan error, 1)
	go func() { result <- call(context.WithoutCancel(ctx)) }()
	select {
	case err := <-result:
		if err == nil {
			copyOut()
		}
		done()
		return err
	case <-ctx.Done():
	}
	c.mu.Lock()
	c.detached++
	c.mu.Unlock()
	go func() {
		<-result
		done()
		c.mu.Lock()
		c.detached--
		var frees []dataplane.Region
		if c.detached == 0 {
			frees, c.deferred = c.deferred, nil
		}
		c.mu.Unlock()
		for _, r := range frees {
			c.arena.Free(r)
		}
	}()
	return ctx.Err()
}

// freeRegion returns a Buffers region to the arena, or, while a cancelled
// call may still be writing the arena, once it has finished.
func (c *Client) freeRegion(r dataplane.Region) {
	c.mu.Lock()
	if c.detached > 0 {
		c.deferred = append(c.deferred, r)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.arena.Free(r)
}

// encodeStream runs one Encode over the streaming fallback.
func (c *Client) encodeStream(ctx context.Context, p Params, j EncodeJob) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on every early return
	s, err := c.rpc.Encode(ctx)
	if err != nil {
		return fromStatus("encode", err)
	}
	send := func(m *codecpb.EncodeRequest) error {
		if err := s.Send(m); err != nil {
			if err == io.EOF { // the plugin ended the call: its status says why
				_, err = s.Recv()
			}
			return fromStatus("encode", err)
		}
		return nil
	}
	hdr := &codecpb.EncodeHeader{Params: wireParams(p), SegmentLength: uint64(len(j.Segment))}
	if err := send(&codecpb.EncodeRequest{Msg: &codecpb.EncodeRequest_Header{Header: hdr}}); err != nil {
		return err
	}
	for b := j.Segment; len(b) > 0; {
		n := min(len(b), pluginkit.ChunkSize)
		if err := send(&codecpb.EncodeRequest{Msg: &codecpb.EncodeRequest_Chunk{Chunk: b[:n]}}); err != nil {
			return err
		}
		b = b[n:]
	}
	if err := s.CloseSend(); err != nil {
		return fromStatus("encode", err)
	}
	filled := make([]int, len(j.Blocks))
	next := 0 // blocks arrive in order
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fromStatus("encode", err)
		}
		ix := int(m.Index)
		if ix < next || ix >= len(j.Blocks) || filled[ix]+len(m.Data) > len(j.Blocks[ix]) {
			return fmt.Errorf("codec plugin encode: answer does not match the request (block %d)", ix)
		}
		next = ix
		filled[ix] += copy(j.Blocks[ix][filled[ix]:], m.Data)
	}
	for i, n := range filled {
		if n != len(j.Blocks[i]) {
			return fmt.Errorf("codec plugin encode: block %d came back with %d of %d bytes", i, n, len(j.Blocks[i]))
		}
	}
	return nil
}

// decodeStream runs one Decode over the streaming fallback.
func (c *Client) decodeStream(ctx context.Context, p Params, j DecodeJob) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.rpc.Decode(ctx)
	if err != nil {
		return fromStatus("decode", err)
	}
	send := func(m *codecpb.DecodeRequest) error {
		if err := s.Send(m); err != nil {
			if err == io.EOF {
				_, err = s.Recv()
			}
			return fromStatus("decode", err)
		}
		return nil
	}
	hdr := &codecpb.DecodeHeader{Params: wireParams(p), SegmentLength: uint64(len(j.Out))}
	for i, b := range j.Blocks {
		if b != nil {
			hdr.Present = append(hdr.Present, uint32(i))
		}
	}
	if err := send(&codecpb.DecodeRequest{Msg: &codecpb.DecodeRequest_Header{Header: hdr}}); err != nil {
		return err
	}
	for i, b := range j.Blocks {
		for len(b) > 0 {
			n := min(len(b), pluginkit.ChunkSize)
			m := &codecpb.DecodeRequest{Msg: &codecpb.DecodeRequest_Block{Block: &codecpb.BlockChunk{Index: uint32(i), Data: b[:n]}}}
			if err := send(m); err != nil {
				return err
			}
			b = b[n:]
		}
	}
	if err := s.CloseSend(); err != nil {
		return fromStatus("decode", err)
	}
	got := 0
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fromStatus("decode", err)
		}
		if got+len(m.Data) > len(j.Out) {
			return fmt.Errorf("codec plugin decode: answer longer than the %d-byte segment", len(j.Out))
		}
		got += copy(j.Out[got:], m.Data)
	}
	if got != len(j.Out) {
		return fmt.Errorf("codec plugin decode: segment came back with %d of %d bytes", got, len(j.Out))
	}
	return nil
}
