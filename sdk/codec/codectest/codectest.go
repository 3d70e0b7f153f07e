// Package codectest is the conformance suite of the codec contract. Every
// codec, built in or third party, in process or behind a plugin process, runs
// it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		codectest.Run(t, func(t *testing.T) codec.Codec { return mycodec.New() })
//	}
//
// Parameters a codec answers with codec.ErrUnsupported (say K != 1 for a
// replication codec) or beyond its Info.MaxN are skipped and logged; every
// other case must pass.
package codectest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tarnfs/tarn/sdk/codec"
)

// Params are the (K, N) the round trips cover, small to the largest N.
var Params = []codec.Params{
	{K: 1, N: 1}, {K: 1, N: 2}, {K: 1, N: 3}, {K: 2, N: 2}, {K: 2, N: 3}, {K: 3, N: 5},
	{K: 3, N: 10}, {K: 4, N: 6}, {K: 7, N: 10}, {K: 10, N: 10}, {K: 20, N: 40},
	{K: 1, N: 256}, {K: 100, N: 200}, {K: 128, N: 256}, {K: 255, N: 256},
}

// maxBlockBytes bounds N*BlockSize per round trip, so that 1-of-256 does
// not encode 256 MiB of blocks.
const maxBlockBytes = 24 << 20

// Sizes are the segment lengths tried for params p: 1, K-1, K, K+1, an odd
// size and 1 MiB (when its N blocks stay under 24 MiB).
func Sizes(p codec.Params) []int {
	s := []int{1}
	for _, n := range []int{p.K - 1, p.K, p.K + 1, 4093, 1 << 20} {
		if n > s[len(s)-1] && p.N*codec.BlockSize(p, n) <= maxBlockBytes {
			s = append(s, n)
		}
	}
	return s
}

// Run runs the suite. newCodec is called once per subtest.
func Run(t *testing.T, newCodec func(t *testing.T) codec.Codec) {
	t.Run("Info", func(t *testing.T) { testInfo(t, newCodec(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newCodec(t)) })
	t.Run("MissingPatterns", func(t *testing.T) { testMissing(t, newCodec(t)) })
	t.Run("TooFewBlocks", func(t *testing.T) { testTooFew(t, newCodec(t)) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, newCodec(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newCodec(t)) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// supported filters Params by MaxN and by what the codec accepts.
func supported(t *testing.T, c codec.Codec) []codec.Params {
	t.Helper()
	ctx := ctxFor(t)
	in, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	var ps []codec.Params
	for _, p := range Params {
		if p.N > in.MaxN {
			t.Logf("skip K=%d N=%d: beyond MaxN=%d", p.K, p.N, in.MaxN)
			continue
		}
		blocks := alloc(p, 1)
		err := c.Encode(ctx, p, []byte{1}, blocks)
		if errors.Is(err, codec.ErrUnsupported) {
			t.Logf("skip K=%d N=%d: %v", p.K, p.N, err)
			continue
		}
		if err != nil {
			t.Fatalf("encode 1 byte with K=%d N=%d: %v", p.K, p.N, err)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		t.Fatal("codec supports none of the suite's parameters")
	}
	return ps
}

// alloc returns N blocks for a segment of segLen bytes.
func alloc(p codec.Params, segLen int) [][]byte {
	bs := codec.BlockSize(p, segLen)
	backing := make([]byte, bs*p.N)
	blocks := make([][]byte, p.N)
	for i := range blocks {
		blocks[i] = backing[i*bs : (i+1)*bs : (i+1)*bs]
	}
	return blocks
}

func randomSegment(r *rand.Rand, n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

// subset copies the blocks whose bit is set in present (decode may
// overwrite what it is given, so the originals stay intact).
func subset(blocks [][]byte, present func(i int) bool) [][]byte {
	out := make([][]byte, len(blocks))
	for i, b := range blocks {
		if present(i) {
			out[i] = bytes.Clone(b)
		}
	}
	return out
}

// noPanic runs f and turns a panic into a test failure.
func noPanic(t *testing.T, what string, f func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

func testInfo(t *testing.T, c codec.Codec) {
	in, err := c.Info(ctxFor(t))
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if in.Name == "" {
		t.Error("info: empty name")
	}
	if in.MaxN < 1 || in.MaxN > codec.MaxShares {
		t.Errorf("info: MaxN=%d, want 1..%d", in.MaxN, codec.MaxShares)
	}
}

func testRoundTrip(t *testing.T, c codec.Codec) {
	ctx := ctxFor(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range supported(t, c) {
		for _, size := range Sizes(p) {
			t.Run(fmt.Sprintf("K%d-N%d/%dB", p.K, p.N, size), func(t *testing.T) {
				seg := randomSegment(r, size)
				blocks := alloc(p, size)
				if err := c.Encode(ctx, p, seg, blocks); err != nil {
					t.Fatalf("encode: %v", err)
				}
				again := alloc(p, size)
				if err := c.Encode(ctx, p, seg, again); err != nil {
					t.Fatalf("encode again: %v", err)
				}
				for i := range blocks {
					if !bytes.Equal(blocks[i], again[i]) {
						t.Fatalf("encode is not deterministic: block %d differs", i)
					}
				}
				// All blocks, the first K, the last K, and K at random.
				patterns := map[string]func(int) bool{
					"all":     func(int) bool { return true },
					"first-K": func(i int) bool { return i < p.K },
					"last-K":  func(i int) bool { return i >= p.N-p.K },
				}
				perm := r.Perm(p.N)[:p.K]
				pick := make(map[int]bool, p.K)
				for _, i := range perm {
					pick[i] = true
				}
				patterns["random-K"] = func(i int) bool { return pick[i] }
				for name, present := range patterns {
					out := make([]byte, size)
					if err := c.Decode(ctx, p, subset(blocks, present), out); err != nil {
						t.Fatalf("decode from %s: %v", name, err)
					}
					if !bytes.Equal(out, seg) {
						t.Fatalf("decode from %s: segment differs", name)
					}
				}
			})
		}
	}
}

func testMissing(t *testing.T, c codec.Codec) {
	ctx := ctxFor(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, p := range supported(t, c) {
		t.Run(fmt.Sprintf("K%d-N%d", p.K, p.N), func(t *testing.T) {
			size := 3*p.K + 1
			seg := randomSegment(r, size)
			blocks := alloc(p, size)
			if err := c.Encode(ctx, p, seg, blocks); err != nil {
				t.Fatalf("encode: %v", err)
			}
			var masks []uint64
			if p.N <= 10 {
				for m := uint64(0); m < 1<<p.N; m++ { // every pattern
					masks = append(masks, m)
				}
			}
			check := func(name string, present func(int) bool, n int) {
				out := make([]byte, size)
				err := c.Decode(ctx, p, subset(blocks, present), out)
				switch {
				case n < p.K && !errors.Is(err, codec.ErrTooFewBlocks):
					t.Fatalf("decode from %s (%d blocks): got %v, want ErrTooFewBlocks", name, n, err)
				case n >= p.K && err != nil:
					t.Fatalf("decode from %s: %v", name, err)
				case n >= p.K && !bytes.Equal(out, seg):
					t.Fatalf("decode from %s: segment differs", name)
				}
			}
			for _, m := range masks {
				check(fmt.Sprintf("mask %b", m), func(i int) bool { return m&(1<<i) != 0 }, bits.OnesCount64(m))
			}
			if p.N > 10 { // random subsets of K..N blocks
				for range 12 {
					n := p.K + r.IntN(p.N-p.K+1)
					pick := make(map[int]bool, n)
					for _, i := range r.Perm(p.N)[:n] {
						pick[i] = true
					}
					check(fmt.Sprintf("%d random blocks", n), func(i int) bool { return pick[i] }, n)
				}
			}
		})
	}
}

func testTooFew(t *testing.T, c codec.Codec) {
	ctx := ctxFor(t)
	for _, p := range supported(t, c) {
		t.Run(fmt.Sprintf("K%d-N%d", p.K, p.N), func(t *testing.T) {
			size := 2*p.K + 5
			blocks := alloc(p, size)
			if err := c.Encode(ctx, p, make([]byte, size), blocks); err != nil {
				t.Fatalf("encode: %v", err)
			}
			cases := map[string]func(int) bool{
				"none":         func(int) bool { return false },
				"K-minus":      func(i int) bool { return i < p.K-1 },
				"last-K-minus": func(i int) bool { return i > p.N-p.K },
			}
			for name, present := range cases {
				err := noPanic(t, "decode", func() error {
					return c.Decode(ctx, p, subset(blocks, present), make([]byte, size))
				})
				if !errors.Is(err, codec.ErrTooFewBlocks) {
					t.Errorf("decode from %s: got %v, want ErrTooFewBlocks", name, err)
				}
			}
		})
	}
}

func testBadInput(t *testing.T, c codec.Codec) {
	ctx := ctxFor(t)
	p := supported(t, c)[0]
	for _, q := range supported(t, c) { // prefer a code with parity
		if q.N > q.K && q.N <= 10 {
			p = q
			break
		}
	}
	const size = 1000
	bs := codec.BlockSize(p, size)
	good := func() [][]byte {
		b := alloc(p, size)
		if err := c.Encode(ctx, p, make([]byte, size), b); err != nil {
			t.Fatalf("encode: %v", err)
		}
		return b
	}
	type tc struct {
		name string
		call func() error
	}
	cases := []tc{
		{"encode K=0", func() error {
			return c.Encode(ctx, codec.Params{K: 0, N: p.N}, make([]byte, size), alloc(codec.Params{K: 1, N: p.N}, size))
		}},
		{"encode K>N", func() error {
			return c.Encode(ctx, codec.Params{K: p.N + 1, N: p.N}, make([]byte, size), alloc(p, size))
		}},
		{"encode N>256", func() error {
			q := codec.Params{K: 1, N: codec.MaxShares + 1}
			return c.Encode(ctx, q, make([]byte, size), alloc(q, size))
		}},
		{"encode empty segment", func() error { return c.Encode(ctx, p, nil, alloc(p, size)) }},
		{"encode too few blocks", func() error { return c.Encode(ctx, p, make([]byte, size), alloc(p, size)[:p.N-1]) }},
		{"encode too many blocks", func() error {
			return c.Encode(ctx, p, make([]byte, size), append(alloc(p, size), make([]byte, bs)))
		}},
		{"encode short block", func() error {
			b := alloc(p, size)
			b[p.N-1] = b[p.N-1][:bs-1]
			return c.Encode(ctx, p, make([]byte, size), b)
		}},
		{"encode long block", func() error {
			b := alloc(p, size)
			b[0] = make([]byte, bs+1)
			return c.Encode(ctx, p, make([]byte, size), b)
		}},
		{"encode nil block", func() error {
			b := alloc(p, size)
			b[0] = nil
			return c.Encode(ctx, p, make([]byte, size), b)
		}},
		{"decode empty out", func() error { return c.Decode(ctx, p, good(), nil) }},
		{"decode too few entries", func() error { return c.Decode(ctx, p, good()[:p.N-1], make([]byte, size)) }},
		{"decode short block", func() error {
			b := good()
			b[0] = b[0][:bs-1]
			return c.Decode(ctx, p, b, make([]byte, size))
		}},
		{"decode long block", func() error {
			b := good()
			b[p.N-1] = append(b[p.N-1], 0)
			return c.Decode(ctx, p, b, make([]byte, size))
		}},
		{"decode empty present block", func() error {
			b := good()
			b[0] = []byte{}
			return c.Decode(ctx, p, b, make([]byte, size))
		}},
		{"decode out of other size", func() error { return c.Decode(ctx, p, good(), make([]byte, size*3)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := noPanic(t, tc.name, tc.call); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		})
	}
}

func testConcurrent(t *testing.T, c codec.Codec) {
	ctx := ctxFor(t)
	ps := supported(t, c)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			for i := range 6 {
				p := ps[(g+i)%len(ps)]
				if p.N > 40 {
					p = ps[0]
				}
				size := 1 + r.IntN(200<<10)
				seg := randomSegment(r, size)
				blocks := alloc(p, size)
				if err := c.Encode(ctx, p, seg, blocks); err != nil {
					errs <- fmt.Errorf("goroutine %d: encode K=%d N=%d: %w", g, p.K, p.N, err)
					return
				}
				pick := r.Perm(p.N)[:p.K]
				in := make([][]byte, p.N)
				for _, k := range pick {
					in[k] = blocks[k]
				}
				out := make([]byte, size)
				if err := c.Decode(ctx, p, in, out); err != nil {
					errs <- fmt.Errorf("goroutine %d: decode K=%d N=%d: %w", g, p.K, p.N, err)
					return
				}
				if !bytes.Equal(out, seg) {
					errs <- fmt.Errorf("goroutine %d: K=%d N=%d: segment differs", g, p.K, p.N)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
