package codec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	. "github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/codec/codecpb"
	"github.com/tarnfs/tarn/sdk/codec/codectest"
	"github.com/tarnfs/tarn/sdk/dataplane"
)

// parityCodec is a small real codec for testing the RPC layer from inside
// sdk/: systematic, with at most one XOR parity block (N = K or K+1).
type parityCodec struct{ settings []byte }

func (*parityCodec) Info(context.Context) (Info, error) {
	return Info{Name: "xor-parity", Version: "test", MaxN: MaxShares}, nil
}

func (*parityCodec) check(p Params) error {
	if p.Validate() == nil && p.N > p.K+1 {
		return fmt.Errorf("xor parity: K=%d N=%d: at most one parity block: %w", p.K, p.N, ErrUnsupported)
	}
	return nil
}

func (c *parityCodec) Encode(_ context.Context, p Params, seg []byte, blocks [][]byte) error {
	if err := c.check(p); err != nil {
		return err
	}
	if err := CheckEncode(p, seg, blocks); err != nil {
		return err
	}
	bs := BlockSize(p, len(seg))
	for i := 0; i < p.K; i++ {
		n := copy(blocks[i], seg[min(i*bs, len(seg)):])
		clear(blocks[i][n:])
	}
	if p.N > p.K {
		par := blocks[p.K]
		clear(par)
		for i := 0; i < p.K; i++ {
			for j, b := range blocks[i] {
				par[j] ^= b
			}
		}
	}
	return nil
}

func (c *parityCodec) Decode(_ context.Context, p Params, blocks [][]byte, out []byte) error {
	if err := c.check(p); err != nil {
		return err
	}
	if err := CheckDecode(p, blocks, out); err != nil {
		return err
	}
	bs := BlockSize(p, len(out))
	for i := 0; i < p.K; i++ {
		b := blocks[i]
		if b == nil { // the one missing data block: XOR of all the others
			b = make([]byte, bs)
			for k := 0; k < p.N; k++ {
				if k != i {
					for j, x := range blocks[k] {
						b[j] ^= x
					}
				}
			}
		}
		if i*bs < len(out) {
			copy(out[i*bs:], b)
		}
	}
	return nil
}

func (c *parityCodec) Configure(_ context.Context, settings []byte) error {
	if bytes.Contains(settings, []byte("bad")) {
		return fmt.Errorf("xor parity: bad setting: %w", ErrInvalidInput)
	}
	c.settings = settings
	return nil
}

// noSettings is a codec without Configure.
type noSettings struct{ parityCodec }

func (noSettings) Configure() {} // shadows, so noSettings is no Configurer

// serveRPC runs the real gRPC server of tarn.codec.v1 on a unix socket and
// returns a Client for it. serverArena and clientArena stand for the two
// mappings; in one process they may be the same arena.
func serveRPC(t *testing.T, impl Codec, serverArena, clientArena *dataplane.Arena) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "codec.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	codecpb.RegisterCodecServer(s, NewServer(impl, serverArena))
	go s.Serve(l)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(codecpb.NewCodecClient(conn), clientArena)
}

func newArena(t *testing.T, size int) *dataplane.Arena {
	t.Helper()
	a, err := dataplane.NewArena("codec-test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestConformanceParityInProcess(t *testing.T) {
	codectest.Run(t, func(*testing.T) Codec { return &parityCodec{} })
}

// TestConformanceOverRPC runs the suite through the client and server on
// each path: shared memory, an arena too small to stage anything (every call
// falls back to streaming), no arena at all, and arenas that do not match.
func TestConformanceOverRPC(t *testing.T) {
	cases := []struct {
		name           string
		server, client int // arena sizes; 0 for none
		wantFast       bool
	}{
		{"shared-memory", 64 << 20, -1, true},
		{"arena-full", 4096, -1, true},
		{"streaming", 0, 0, false},
		{"plugin-did-not-map", 0, 64 << 20, false},
		{"arenas-differ", 8 << 20, 16 << 20, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sa, ca *dataplane.Arena
			if tc.server > 0 {
				sa = newArena(t, tc.server)
			}
			switch {
			case tc.client < 0:
				ca = sa
			case tc.client > 0:
				ca = newArena(t, tc.client)
			}
			c := serveRPC(t, &parityCodec{}, sa, ca)
			fast, err := c.FastPath(context.Background())
			if err != nil || fast != tc.wantFast {
				t.Fatalf("fast path = %v (%v), want %v", fast, err, tc.wantFast)
			}
			codectest.Run(t, func(*testing.T) Codec { return c })
		})
	}
}

// TestStagingMixedBuffers: a segment inside the arena with blocks outside
// it (and the reverse) round-trips, and staging regions are all freed.
func TestStagingMixedBuffers(t *testing.T) {
	a := newArena(t, 8<<20)
	c := serveRPC(t, &parityCodec{}, a, a)
	ctx := context.Background()
	p := Params{K: 4, N: 5}
	const size = 100003
	buf, err := c.AllocBuffers(p, size)
	if err != nil || !buf.Shared() {
		t.Fatalf("alloc buffers: shared=%v err=%v", buf.Shared(), err)
	}
	for i := range buf.Segment {
		buf.Segment[i] = byte(i * 7)
	}
	heapBlocks := make([][]byte, p.N)
	for i := range heapBlocks {
		heapBlocks[i] = make([]byte, BlockSize(p, size))
	}
	if err := c.Encode(ctx, p, buf.Segment, heapBlocks); err != nil {
		t.Fatalf("encode shared segment into heap blocks: %v", err)
	}
	if err := c.Encode(ctx, p, bytes.Clone(buf.Segment), buf.Blocks); err != nil {
		t.Fatalf("encode heap segment into shared blocks: %v", err)
	}
	for i := range heapBlocks {
		if !bytes.Equal(heapBlocks[i], buf.Blocks[i]) {
			t.Fatalf("block %d differs between the two layouts", i)
		}
	}
	in := [][]byte{heapBlocks[0], buf.Blocks[1], nil, heapBlocks[3], buf.Blocks[4]}
	out := make([]byte, size)
	if err := c.Decode(ctx, p, in, out); err != nil || !bytes.Equal(out, buf.Segment) {
		t.Fatalf("decode from mixed blocks: %v", err)
	}
	buf.Release()
	buf.Release() // twice is harmless
	// Everything was freed: the whole arena can be taken again.
	r, err := a.Alloc(a.Size())
	if err != nil {
		t.Fatalf("arena not fully freed after the calls: %v", err)
	}
	a.Free(r)
}

func TestAllocBuffersWithoutRoom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		arena int
	}{{"no-arena", 0}, {"arena-too-small", 4096}} {
		t.Run(tc.name, func(t *testing.T) {
			var a *dataplane.Arena
			if tc.arena > 0 {
				a = newArena(t, tc.arena)
			}
			c := serveRPC(t, &parityCodec{}, a, a)
			p := Params{K: 2, N: 3}
			b, err := c.AllocBuffers(p, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			if b.Shared() {
				t.Fatal("buffers claim to be shared")
			}
			copy(b.Segment, "heap buffers still work")
			if err := c.Encode(context.Background(), p, b.Segment, b.Blocks); err != nil {
				t.Fatalf("encode heap buffers: %v", err)
			}
			if _, err := c.AllocBuffers(Params{K: 3, N: 2}, 10); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("alloc with K>N: got %v", err)
			}
			if _, err := c.AllocBuffers(p, 0); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("alloc of 0 bytes: got %v", err)
			}
		})
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct {
		name     string
		impl     Codec
		settings string
		want     error // nil: success
	}{
		{"configurer takes settings", &parityCodec{}, `{"level":3}`, nil},
		{"configurer refuses", &parityCodec{}, `{"bad":true}`, ErrInvalidInput},
		{"no settings, empty object", &noSettings{}, `{}`, nil},
		{"no settings, nothing", &noSettings{}, ``, nil},
		{"no settings, null", &noSettings{}, ` null `, nil},
		{"no settings, some given", &noSettings{}, `{"level":3}`, ErrUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serveRPC(t, tc.impl, nil, nil)
			err := c.Configure(context.Background(), []byte(tc.settings))
			if tc.want == nil && err != nil {
				t.Fatalf("configure: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("configure: got %v, want %v", err, tc.want)
			}
		})
	}
	pc := &parityCodec{}
	if err := serveRPC(t, pc, nil, nil).Configure(context.Background(), []byte(`{"level":3}`)); err != nil || string(pc.settings) != `{"level":3}` {
		t.Fatalf("settings did not reach the codec: %q, %v", pc.settings, err)
	}
}

// panicky panics on Encode; the server turns that into an error.
type panicky struct{ parityCodec }

func (panicky) Encode(context.Context, Params, []byte, [][]byte) error { panic("boom") }

func TestPanicBecomesError(t *testing.T) {
	a := newArena(t, 1<<20)
	for _, tc := range []struct {
		name  string
		arena *dataplane.Arena
	}{{"shared-memory", a}, {"streaming", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			c := serveRPC(t, &panicky{}, tc.arena, tc.arena)
			p := Params{K: 1, N: 2}
			err := c.Encode(context.Background(), p, []byte{1}, [][]byte{{0}, {0}})
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("got %v, want a panic turned into an error", err)
			}
			if _, err := c.Info(context.Background()); err != nil {
				t.Fatalf("server gone after a panic: %v", err)
			}
		})
	}
}

// FuzzSharedRequest feeds arbitrary EncodeShared and DecodeShared requests
// to the plugin side: every one gets an answer, none panics or touches
// memory outside the arena.
func FuzzSharedRequest(f *testing.F) {
	p := &codecpb.Params{K: 2, N: 3}
	span := func(off, n uint64) *codecpb.Span { return &codecpb.Span{Offset: off, Length: n} }
	seeds := []proto.Message{
		&codecpb.EncodeSharedRequest{Params: p, Jobs: []*codecpb.EncodeJob{{
			Segment: span(0, 10), Blocks: []*codecpb.Span{span(4096, 5), span(8192, 5), span(12288, 5)}}}},
		&codecpb.DecodeSharedRequest{Params: p, Jobs: []*codecpb.DecodeJob{{
			Out: span(0, 10), Blocks: []*codecpb.SharedBlock{{Index: 0, Span: span(4096, 5)}, {Index: 2, Span: span(12288, 5)}}}}},
		&codecpb.EncodeSharedRequest{Params: p, Jobs: []*codecpb.EncodeJob{{Segment: span(1<<63, 1<<63)}}},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(i%2 == 1, b)
	}
	a, err := dataplane.NewArena("codec-fuzz", 64<<10)
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	s := NewServer(&parityCodec{}, a)
	f.Fuzz(func(t *testing.T, decode bool, data []byte) {
		ctx := context.Background()
		if decode {
			var req codecpb.DecodeSharedRequest
			if proto.Unmarshal(data, &req) == nil {
				s.DecodeShared(ctx, &req)
			}
			return
		}
		var req codecpb.EncodeSharedRequest
		if proto.Unmarshal(data, &req) == nil {
			s.EncodeShared(ctx, &req)
		}
	})
}

// countingServer counts the calls of each path reaching a real server.
type countingServer struct {
	codecpb.CodecServer
	shared, streamed atomic.Int32
}

func (s *countingServer) EncodeShared(ctx context.Context, r *codecpb.EncodeSharedRequest) (*codecpb.EncodeSharedResponse, error) {
	s.shared.Add(1)
	return s.CodecServer.EncodeShared(ctx, r)
}

func (s *countingServer) Encode(st codecpb.Codec_EncodeServer) error {
	s.streamed.Add(1)
	return s.CodecServer.Encode(st)
}

// TestBatchSplitsToFitArena: a batch of heap buffers too big to stage at
// once is staged in smaller batches, not streamed.
func TestBatchSplitsToFitArena(t *testing.T) {
	a := newArena(t, 4<<20)
	cs := &countingServer{CodecServer: NewServer(&parityCodec{}, a)}
	sock := filepath.Join(t.TempDir(), "codec.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	codecpb.RegisterCodecServer(s, cs)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := NewClient(codecpb.NewCodecClient(conn), a)

	p := Params{K: 2, N: 3}
	const size = 300 << 10 // 750 KiB staged per segment: 8 do not fit in 4 MiB
	var jobs []EncodeJob
	for i := range 8 {
		seg := bytes.Repeat([]byte{byte(i + 1)}, size)
		blocks := make([][]byte, p.N)
		for k := range blocks {
			blocks[k] = make([]byte, BlockSize(p, size))
		}
		jobs = append(jobs, EncodeJob{Segment: seg, Blocks: blocks})
	}
	if err := c.EncodeBatch(context.Background(), p, jobs); err != nil {
		t.Fatalf("encode batch: %v", err)
	}
	for i, j := range jobs {
		if j.Blocks[0][0] != byte(i+1) || j.Blocks[2][0] != 0 { // x ^ x = 0
			t.Fatalf("segment %d encoded wrong", i)
		}
	}
	if cs.streamed.Load() != 0 || cs.shared.Load() < 2 {
		t.Fatalf("shared calls %d, streamed %d: want the batch split over shared memory",
			cs.shared.Load(), cs.streamed.Load())
	}
}

// slowCodec ignores its context and takes its time, as a busy plugin does:
// it says when a call reached it (entered) and answers only once release
// is closed (the test decides when, so a loaded machine cannot make it
// answer before the caller has given up).
type slowCodec struct {
	parityCodec
	entered chan struct{}
	release chan struct{}
}

func (s *slowCodec) Encode(ctx context.Context, p Params, seg []byte, blocks [][]byte) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.parityCodec.Encode(ctx, p, seg, blocks)
}

// TestCancelKeepsArenaUntilPluginAnswers: a call whose context ends returns
// at once, but the arena memory the plugin may still write (the staging
// region, and buffers released meanwhile) is not reused until it answers.
func TestCancelKeepsArenaUntilPluginAnswers(t *testing.T) {
	a := newArena(t, 4<<20)
	release := make(chan struct{})
	var once sync.Once
	answer := func() { once.Do(func() { close(release) }) }
	t.Cleanup(answer)
	entered := make(chan struct{}, 1)
	c := serveRPC(t, &slowCodec{entered: entered, release: release}, a, a)
	p := Params{K: 2, N: 3}
	bufs, err := c.AllocBuffers(p, 100<<10)
	if err != nil || !bufs.Shared() {
		t.Fatalf("alloc buffers: %v", err)
	}
	heapBlocks := [][]byte{make([]byte, 50<<10), make([]byte, 50<<10), make([]byte, 50<<10)}
	// The caller gives up once the plugin has the call (a 50 ms deadline
	// could end before, in the plugin info call on a loaded machine). The
	// plugin does not answer until release: the call must return on its
	// context alone (10 s is only there to fail rather than hang).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-entered:
			cancel()
		case <-ctx.Done():
		}
	}()
	done := make(chan error, 1)
	go func() { done <- c.Encode(ctx, p, bytes.Repeat([]byte{0x5a}, 100<<10), heapBlocks) }() // staged
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a call whose caller gave up waits for the plugin's answer")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want Canceled", err)
	}
	bufs.Release() // while the plugin may still write: deferred
	if r, err := a.Alloc(a.Size()); err == nil {
		a.Free(r)
		t.Fatal("arena memory reusable while the plugin may still write it")
	}
	answer()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := a.Alloc(a.Size())
		if err == nil {
			a.Free(r)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("arena memory never freed after the plugin answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, b := range heapBlocks {
		if b[0] != 0 || b[len(b)-1] != 0 {
			t.Fatal("results copied into the caller's buffers after it gave up")
		}
	}
}
