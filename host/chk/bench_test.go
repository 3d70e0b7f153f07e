package chk

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/tarnfs/tarn/host/tagged"
	"github.com/tarnfs/tarn/sdk/codec"
)

type discard struct{}

func (discard) WriteAt(context.Context, int, []byte, int64) error { return nil }

// rate returns fn's speed in MB/s (fn processes n bytes): the best of five
// 40 ms runs, so that a burst of other work on a shared machine does not
// pass for the ceiling.
func rate(n int, fn func()) float64 {
	fn()
	best := 0.0
	for range 5 {
		start, count := time.Now(), 0
		for time.Since(start) < 40*time.Millisecond {
			fn()
			count++
		}
		best = max(best, float64(n)*float64(count)/time.Since(start).Seconds()/1e6)
	}
	return best
}

type ceilings struct{ aes, blake3, sha256, rsEnc, rsDec float64 }

// measureCeilings measures, on one goroutine, what the pipeline is built
// from: AES-256-CTR, the hash, and Reed-Solomon 3-of-10 on 1 MiB segments.
func measureCeilings() ceilings {
	seg := content(1<<20, 1)
	out := make([]byte, len(seg))
	blk, _ := aes.NewCipher(make([]byte, 32))
	p := codec.Params{K: 3, N: 10}
	bs := codec.BlockSize(p, len(seg))
	blocks := make([][]byte, 10)
	for i := range blocks {
		blocks[i] = make([]byte, bs)
	}
	ctx := context.Background()
	var c ceilings
	c.aes = rate(len(seg), func() { cipher.NewCTR(blk, make([]byte, 16)).XORKeyStream(out, seg) })
	c.blake3 = rate(len(seg), func() { tagged.Hash(tagged.ChkBlock, seg) })
	c.sha256 = rate(len(seg), func() { sha256.Sum256(seg) })
	c.rsEnc = rate(len(seg), func() { rs.Encode(ctx, p, seg, blocks) })
	in := make([][]byte, 10)
	c.rsDec = rate(len(seg), func() {
		clear(in)
		in[1], in[5], in[9] = blocks[1], blocks[5], blocks[9]
		rs.Decode(ctx, p, in, out)
	})
	return c
}

func withProcs(n int, fn func()) {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	fn()
}

// BenchmarkPipeline measures encode and decode of a 32 MiB file at 3-of-10,
// 1 MiB segments, on one core and on all, and reports each against the
// ceiling its parts allow on one core (serial sum of the parts' costs).
//
//	go test -run XXX -bench Pipeline -benchtime 5x ./host/chk
func BenchmarkPipeline(b *testing.B) {
	c := measureCeilings()
	b.Logf("ceilings MB/s on one core: aes-ctr %.0f, blake3 %.0f, sha256 %.0f, rs 3-of-10 encode %.0f, decode (3 parity) %.0f",
		c.aes, c.blake3, c.sha256, c.rsEnc, c.rsDec)
	// per byte of file: AES, hash of the segment and of N/K as many block
	// bytes, RS encode.
	encIdeal := 1 / (1/c.aes + (1+10.0/3)/c.blake3 + 1/c.rsEnc)
	// decode: hash K blocks (1x) and the segment (1x), RS decode, AES.
	decIdeal := 1 / (1/c.aes + 2/c.blake3 + 1/c.rsDec)
	b.Logf("ideal one-core pipeline MB/s: encode %.0f, decode %.0f", encIdeal, decIdeal)

	p := DefaultParams
	data := content(32<<20, 2)
	key := testKey(9)
	capv, shares := encode(b, p, key, data)
	ctx := context.Background()
	for _, procs := range []int{1, runtime.NumCPU()} {
		b.Run(fmt.Sprintf("encode/procs=%d", procs), func(b *testing.B) {
			withProcs(procs, func() {
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					e, err := NewEncoder(ctx, p, key, int64(len(data)), rs, discard{})
					if err != nil {
						b.Fatal(err)
					}
					e.Write(data)
					if _, err := e.Close(); err != nil {
						b.Fatal(err)
					}
				}
				mbs := float64(len(data)) * float64(b.N) / b.Elapsed().Seconds() / 1e6
				b.ReportMetric(mbs/encIdeal, "x_1core_ideal")
				b.ReportMetric(mbs/(encIdeal*float64(procs)), "x_ncore_ideal")
			})
		})
		b.Run(fmt.Sprintf("decode/procs=%d", procs), func(b *testing.B) {
			withProcs(procs, func() {
				b.SetBytes(int64(len(data)))
				buf := make([]byte, 1<<20)
				for b.Loop() {
					d, err := NewDecoder(ctx, capv, rs, shares, &Options{Shares: []int{3, 4, 5, 0, 1, 2, 6, 7, 8, 9}})
					if err != nil {
						b.Fatal(err)
					}
					for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
						if _, err := d.ReadAt(buf, off); err != nil {
							b.Fatal(err)
						}
					}
				}
				mbs := float64(len(data)) * float64(b.N) / b.Elapsed().Seconds() / 1e6
				b.ReportMetric(mbs/decIdeal, "x_1core_ideal")
				b.ReportMetric(mbs/(decIdeal*float64(procs)), "x_ncore_ideal")
			})
		})
	}
}

// BenchmarkSegmentSize is the benchmark behind DefaultSegmentSize: encode
// throughput on one core by segment size.
func BenchmarkSegmentSize(b *testing.B) {
	data := content(16<<20, 3)
	key := testKey(1)
	for _, seg := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("seg=%dKiB", seg>>10), func(b *testing.B) {
			withProcs(1, func() {
				p := Params{K: 3, N: 10, SegmentSize: seg}
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					e, _ := NewEncoder(context.Background(), p, key, int64(len(data)), rs, discard{})
					e.Write(data)
					if _, err := e.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkEncrypt is AES-256-CTR over one 1 MiB segment as the encoder and
// decoder run it (xorKeyStream at a segment's file offset), in place.
//
//	go test -run '^$' -bench 'Encrypt|Decode' -benchmem ./host/chk
func BenchmarkEncrypt(b *testing.B) {
	seg := content(DefaultSegmentSize, 4)
	blk := newCipher(testKey(1))
	b.SetBytes(int64(len(seg)))
	for b.Loop() {
		xorKeyStream(blk, 5*DefaultSegmentSize, seg, seg)
	}
}

// BenchmarkDecode reads a 16 MiB file (3-of-5, 1 MiB segments, from
// memory) through a Decoder, as a whole-file WriteTo and as whole-segment
// ReadAts (the download path of host/grid), with the in-process codec and
// with the codec over a socket with shared memory (a plugin's path: blocks
// and the segment in the arena). Allocations per op show the buffers a
// decoder takes.
func BenchmarkDecode(b *testing.B) {
	p := Params{K: 3, N: 5, SegmentSize: DefaultSegmentSize}
	data := content(16<<20, 6)
	key := testKey(2)
	c, shares := encode(b, p, key, data)
	ctx := context.Background()
	shared, _, _ := sharedCodec(b, 64<<20)
	for _, cd := range []struct {
		name string
		c    codec.Codec
	}{{"in-process", rs}, {"shared-memory", shared}} {
		b.Run("writeto/"+cd.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				d, err := NewDecoder(ctx, c, cd.c, shares, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("segments/"+cd.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, p.SegmentSize)
			for b.Loop() {
				d, err := NewDecoder(ctx, c, cd.c, shares, nil)
				if err != nil {
					b.Fatal(err)
				}
				for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
					if _, err := d.ReadAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
