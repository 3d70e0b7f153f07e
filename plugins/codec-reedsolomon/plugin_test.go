package codecreedsolomon

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/tarnfs/tarn/internal/proctest"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/codec/codecpb"
	"github.com/tarnfs/tarn/sdk/codec/codectest"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// envServe makes the test binary serve the codec as a plugin process, so the
// tests run a real plugin process without building anything.
const envServe = "TARN_TEST_SERVE_CODEC_REEDSOLOMON"

func TestMain(m *testing.M) {
	if os.Getenv(envServe) == "1" {
		Serve()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startPlugin runs this test binary as a reedsolomon plugin process, with or
// without the shared-memory arena, and kills it when the test ends.
func startPlugin(tb testing.TB, fast bool) (*pluginkit.Process, *codec.Client) {
	return startPluginArena(tb, fast, 0)
}

// startPluginArena is startPlugin with an arena of arenaSize bytes (0: the
// default).
func startPluginArena(tb testing.TB, fast bool, arenaSize int) (*pluginkit.Process, *codec.Client) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{envServe + "=1"}
	p, err := pluginkit.Start(codec.StartOptions(pluginkit.StartOptions{
		Name:      Name,
		Cmd:       cmd,
		FastPath:  fast,
		ArenaSize: arenaSize,
	}))
	if err != nil {
		tb.Fatalf("start plugin: %v", err)
	}
	tb.Cleanup(p.Kill)
	c, err := codec.ClientOf(p)
	if err != nil {
		tb.Fatal(err)
	}
	got, err := c.FastPath(context.Background())
	if err != nil {
		tb.Fatalf("plugin info: %v", err)
	}
	if got != fast {
		tb.Fatalf("fast path = %v, want %v", got, fast)
	}
	return p, c
}

func TestConformancePlugin(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"shared-memory", true}, {"streaming", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := startPlugin(t, tc.fast)
			codectest.Run(t, func(*testing.T) codec.Codec { return c })
		})
	}
}

// TestSharedBuffersMatchInProcess checks that arena-backed buffers (the zero
// copy path) and staged heap buffers give the blocks the in-process codec
// gives, in single calls and in batches.
func TestSharedBuffersMatchInProcess(t *testing.T) {
	_, c := startPlugin(t, true)
	ctx := context.Background()
	p := codec.Params{K: 3, N: 10}
	const size = 1<<20 + 7
	seg := bytes.Repeat([]byte("tarn shared memory "), size/19+1)[:size]
	want := make([][]byte, p.N)
	for i := range want {
		want[i] = make([]byte, codec.BlockSize(p, size))
	}
	if err := New().Encode(ctx, p, seg, want); err != nil {
		t.Fatal(err)
	}
	var bufs []*codec.Buffers
	for range 3 {
		b, err := c.AllocBuffers(p, size)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Release)
		if !b.Shared() {
			t.Fatal("buffers are not in shared memory")
		}
		copy(b.Segment, seg)
		bufs = append(bufs, b)
	}
	if err := c.Encode(ctx, p, bufs[0].Segment, bufs[0].Blocks); err != nil {
		t.Fatalf("encode: %v", err)
	}
	jobs := []codec.EncodeJob{{Segment: bufs[1].Segment, Blocks: bufs[1].Blocks}, {Segment: bufs[2].Segment, Blocks: bufs[2].Blocks}}
	if err := c.EncodeBatch(ctx, p, jobs); err != nil {
		t.Fatalf("encode batch: %v", err)
	}
	for bi, b := range bufs {
		for i := range want {
			if !bytes.Equal(b.Blocks[i], want[i]) {
				t.Fatalf("buffers %d: block %d differs from in-process", bi, i)
			}
		}
	}
	// Decode a batch from parity only, into the shared segments.
	var djobs []codec.DecodeJob
	for _, b := range bufs {
		in := make([][]byte, p.N)
		copy(in[p.N-p.K:], b.Blocks[p.N-p.K:])
		clear(b.Segment)
		djobs = append(djobs, codec.DecodeJob{Blocks: in, Out: b.Segment})
	}
	if err := c.DecodeBatch(ctx, p, djobs); err != nil {
		t.Fatalf("decode batch: %v", err)
	}
	for bi, b := range bufs {
		if !bytes.Equal(b.Segment, seg) {
			t.Fatalf("buffers %d: decoded segment differs", bi)
		}
	}
}

// TestBadSharedRequests sends requests no honest host sends straight to the
// plugin process: each gets an error and the plugin keeps serving.
func TestBadSharedRequests(t *testing.T) {
	proc, c := startPlugin(t, true)
	proto, err := proc.Client.Client()
	if err != nil {
		t.Fatal(err)
	}
	rpc := codecpb.NewCodecClient(proto.(*plugin.GRPCClient).Conn)
	ctx := context.Background()
	arena := uint64(proc.DataPlane.Arena.Size())
	span := func(off, n uint64) *codecpb.Span { return &codecpb.Span{Offset: off, Length: n} }
	blocks := func(n int, s *codecpb.Span) []*codecpb.Span {
		out := make([]*codecpb.Span, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	p310 := &codecpb.Params{K: 3, N: 10}
	enc := func(p *codecpb.Params, jobs ...*codecpb.EncodeJob) error {
		_, err := rpc.EncodeShared(ctx, &codecpb.EncodeSharedRequest{Params: p, Jobs: jobs})
		return err
	}
	dec := func(p *codecpb.Params, jobs ...*codecpb.DecodeJob) error {
		_, err := rpc.DecodeShared(ctx, &codecpb.DecodeSharedRequest{Params: p, Jobs: jobs})
		return err
	}
	cases := []struct {
		name string
		call func() error
		is   error
	}{
		{"no params", func() error { return enc(nil, &codecpb.EncodeJob{Segment: span(0, 3), Blocks: blocks(10, span(0, 1))}) }, codec.ErrInvalidInput},
		{"K zero", func() error { return enc(&codecpb.Params{K: 0, N: 3}) }, codec.ErrInvalidInput},
		{"N huge", func() error { return enc(&codecpb.Params{K: 1, N: math.MaxUint32}) }, codec.ErrInvalidInput},
		{"segment past arena", func() error {
			return enc(p310, &codecpb.EncodeJob{Segment: span(arena-2, 3), Blocks: blocks(10, span(0, 1))})
		}, codec.ErrInvalidInput},
		{"offset overflow", func() error {
			return enc(p310, &codecpb.EncodeJob{Segment: span(math.MaxUint64-1, 3), Blocks: blocks(10, span(0, 1))})
		}, codec.ErrInvalidInput},
		{"length overflow", func() error {
			return enc(p310, &codecpb.EncodeJob{Segment: span(4096, math.MaxUint64), Blocks: blocks(10, span(0, 1))})
		}, codec.ErrInvalidInput},
		{"missing segment span", func() error { return enc(p310, &codecpb.EncodeJob{Blocks: blocks(10, span(0, 1))}) }, codec.ErrInvalidInput},
		{"block past arena", func() error {
			return enc(p310, &codecpb.EncodeJob{Segment: span(0, 3), Blocks: blocks(10, span(arena, 1))})
		}, codec.ErrInvalidInput},
		{"nine block spans", func() error {
			return enc(p310, &codecpb.EncodeJob{Segment: span(0, 3), Blocks: blocks(9, span(0, 1))})
		}, codec.ErrInvalidInput},
		{"wrong block size", func() error {
			return enc(p310, &codecpb.EncodeJob{Segment: span(0, 3), Blocks: blocks(10, span(0, 2))})
		}, codec.ErrInvalidInput},
		{"batch too big", func() error {
			jobs := make([]*codecpb.EncodeJob, codec.MaxBatch+1)
			for i := range jobs {
				jobs[i] = &codecpb.EncodeJob{Segment: span(0, 3), Blocks: blocks(10, span(4096, 1))}
			}
			return enc(p310, jobs...)
		}, codec.ErrInvalidInput},
		{"decode block number beyond N", func() error {
			return dec(p310, &codecpb.DecodeJob{Out: span(0, 3), Blocks: []*codecpb.SharedBlock{{Index: 10, Span: span(0, 1)}}})
		}, codec.ErrInvalidInput},
		{"decode block twice", func() error {
			b := &codecpb.SharedBlock{Index: 1, Span: span(0, 1)}
			return dec(p310, &codecpb.DecodeJob{Out: span(4096, 3), Blocks: []*codecpb.SharedBlock{b, b, b}})
		}, codec.ErrInvalidInput},
		{"decode out past arena", func() error {
			return dec(p310, &codecpb.DecodeJob{Out: span(arena, 3)})
		}, codec.ErrInvalidInput},
		{"decode too few", func() error {
			return dec(p310, &codecpb.DecodeJob{Out: span(4096, 3), Blocks: []*codecpb.SharedBlock{{Index: 1, Span: span(0, 1)}}})
		}, codec.ErrTooFewBlocks},
		{"stream without header", func() error {
			s, err := rpc.Encode(ctx)
			if err != nil {
				return err
			}
			s.Send(&codecpb.EncodeRequest{Msg: &codecpb.EncodeRequest_Chunk{Chunk: []byte("x")}})
			s.CloseSend()
			_, err = s.Recv()
			return err
		}, codec.ErrInvalidInput},
		{"stream shorter than header", func() error {
			s, err := rpc.Decode(ctx)
			if err != nil {
				return err
			}
			s.Send(&codecpb.DecodeRequest{Msg: &codecpb.DecodeRequest_Header{Header: &codecpb.DecodeHeader{
				Params: p310, SegmentLength: 30, Present: []uint32{0, 1, 2}}}})
			s.Send(&codecpb.DecodeRequest{Msg: &codecpb.DecodeRequest_Block{Block: &codecpb.BlockChunk{Index: 0, Data: make([]byte, 10)}}})
			s.CloseSend()
			_, err = s.Recv()
			return err
		}, codec.ErrInvalidInput},
		{"stream of a huge segment", func() error {
			s, err := rpc.Encode(ctx)
			if err != nil {
				return err
			}
			s.Send(&codecpb.EncodeRequest{Msg: &codecpb.EncodeRequest_Header{Header: &codecpb.EncodeHeader{Params: p310, SegmentLength: 1 << 40}}})
			s.CloseSend()
			_, err = s.Recv()
			return err
		}, codec.ErrInvalidInput},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			if got := codec.FromStatus("test", err); !errors.Is(got, tc.is) {
				t.Fatalf("got %v, want %v", got, tc.is)
			}
		})
	}
	if proc.Exited() {
		t.Fatal("plugin process died")
	}
	seg := []byte("still serving")
	p := codec.Params{K: 3, N: 10}
	bl := make([][]byte, p.N)
	for i := range bl {
		bl[i] = make([]byte, codec.BlockSize(p, len(seg)))
	}
	if err := c.Encode(ctx, p, seg, bl); err != nil {
		t.Fatalf("encode after bad requests: %v", err)
	}
}

// TestKillMidUse kills the plugin with SIGKILL while calls are in flight on
// both paths: every call returns (with an error once the process is gone),
// none hangs or panics.
func TestKillMidUse(t *testing.T) {
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "shared-memory", false: "streaming"}[fast]
		t.Run(name, func(t *testing.T) {
			proc, c := startPlugin(t, fast)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := codec.Params{K: 3, N: 10}
			const size = 1 << 20
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				okCalls int
				errs    []error
			)
			started := make(chan struct{}, 4)
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b, err := c.AllocBuffers(p, size)
					if err != nil {
						t.Error(err)
						return
					}
					defer b.Release()
					b.Segment[0] = byte(g)
					for i := 0; ; i++ {
						if i == 1 {
							started <- struct{}{}
						}
						err := c.Encode(ctx, p, b.Segment, b.Blocks)
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else {
							okCalls++
						}
						mu.Unlock()
						if err != nil {
							return
						}
					}
				}()
			}
			for range 4 {
				<-started
			}
			if err := proctest.Kill(proc.Pid); err != nil {
				t.Fatalf("kill plugin %d: %v", proc.Pid, err)
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("calls still in flight 20s after the plugin was killed")
			}
			if ctx.Err() != nil {
				t.Fatal("calls ended only by the context deadline")
			}
			if len(errs) != 4 {
				t.Fatalf("%d of 4 callers saw an error", len(errs))
			}
			t.Logf("%d calls succeeded before the kill; first error: %v", okCalls, errs[0])
			// The next call fails promptly too.
			start := time.Now()
			b := [][]byte{make([]byte, 1), make([]byte, 1), make([]byte, 1)}
			if err := c.Encode(ctx, codec.Params{K: 1, N: 3}, []byte{1}, b); err == nil {
				t.Fatal("call on a dead plugin succeeded")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("call on a dead plugin took %v", d)
			}
		})
	}
}
