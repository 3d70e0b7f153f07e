package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"time"

	codecreedsolomon "github.com/tarnfs/tarn/plugins/codec-reedsolomon"
	"github.com/tarnfs/tarn/sdk/codec"
	"github.com/tarnfs/tarn/sdk/pluginkit"
)

// codecBatch is how many 1 MiB segments one shared-memory call carries: a
// round trip to the plugin costs 50-250 us on this loaded machine, and 32
// segments spread it thin (plugins/codec-reedsolomon BenchmarkPaths).
const codecBatch = 32

// streamBatch is the batch of the gRPC fallback, which streams each
// segment anyway.
const streamBatch = 4

// codecArena holds codecBatch segments' buffers (32 x 4.4 MiB); a memfd
// costs only the pages touched.
const codecArena = 256 << 20

var codecParams = codec.Params{K: 3, N: 10}

// minSamples is the fewest batches a codec figure is the median of.
const minSamples = 5

// median of ds (not empty); it sorts ds.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

// codecSet is a batch of segments and their blocks, with the hashes the
// in-process codec gives, to check a path's bytes after it ran.
type codecSet struct {
	ejobs   []codec.EncodeJob
	djobs   []codec.DecodeJob
	bufs    []*codec.Buffers
	segSums [][32]byte   // of each segment
	blkSums [][][32]byte // of each block, from the in-process encode
}

// newCodecSet fills batch segments with seeded random bytes; with shared
// set, its buffers lie in the plugin's arena.
func newCodecSet(batch int, shared *codec.Client) (*codecSet, error) {
	p := codecParams
	ref := codecreedsolomon.New()
	s := &codecSet{}
	for i := range batch {
		var seg []byte
		var blocks [][]byte
		if shared != nil {
			b, err := shared.AllocBuffers(p, segSize)
			if err != nil {
				s.release()
				return nil, err
			}
			s.bufs = append(s.bufs, b)
			if !b.Shared() {
				s.release()
				return nil, fmt.Errorf("codec buffers %d of %d are not in shared memory (arena too small?)", i+1, batch)
			}
			seg, blocks = b.Segment, b.Blocks
		} else {
			seg = make([]byte, segSize)
			blocks = make([][]byte, p.N)
			for k := range blocks {
				blocks[k] = make([]byte, codec.BlockSize(p, segSize))
			}
		}
		r := rand.NewChaCha8([32]byte{byte(i), 7})
		r.Read(seg)
		if err := ref.Encode(context.Background(), p, seg, blocks); err != nil {
			s.release()
			return nil, fmt.Errorf("reference encode: %w", err)
		}
		s.segSums = append(s.segSums, sha256.Sum256(seg))
		var sums [][32]byte
		for _, b := range blocks {
			sums = append(sums, sha256.Sum256(b))
		}
		s.blkSums = append(s.blkSums, sums)
		s.ejobs = append(s.ejobs, codec.EncodeJob{Segment: seg, Blocks: blocks})
		present := make([][]byte, p.N)
		copy(present[p.N-p.K:], blocks[p.N-p.K:]) // parity only: the costliest decode
		s.djobs = append(s.djobs, codec.DecodeJob{Blocks: present, Out: seg})
	}
	return s, nil
}

// scramble overwrites what the next call must produce (blocks for an
// encode, segments for a decode), so that check proves that call wrote it.
func (s *codecSet) scramble(decode bool) {
	for i := range s.ejobs {
		if decode {
			clear(s.ejobs[i].Segment)
			continue
		}
		for _, b := range s.ejobs[i].Blocks {
			clear(b)
		}
	}
}

// check compares the set's bytes with the in-process codec's.
func (s *codecSet) check(path string) error {
	for i, j := range s.ejobs {
		if sha256.Sum256(j.Segment) != s.segSums[i] {
			return fmt.Errorf("codec %s: segment %d differs from the in-process codec's", path, i)
		}
		for k, b := range j.Blocks {
			if sha256.Sum256(b) != s.blkSums[i][k] {
				return fmt.Errorf("codec %s: block %d of segment %d differs from the in-process codec's", path, k, i)
			}
		}
	}
	return nil
}

func (s *codecSet) release() {
	for _, b := range s.bufs {
		b.Release()
	}
}

// startCodec runs `tarn plugin serve codec reedsolomon` as a plugin
// process, with or without the shared-memory arena.
func startCodec(tarnBin string, fast bool) (*pluginkit.Process, *codec.Client, error) {
	p, err := pluginkit.Start(codec.StartOptions(pluginkit.StartOptions{
		Name:      codecreedsolomon.Name,
		Cmd:       exec.Command(tarnBin, "plugin", "serve", "codec", codecreedsolomon.Name),
		FastPath:  fast,
		ArenaSize: codecArena,
	}))
	if err != nil {
		return nil, nil, err
	}
	c, err := codec.ClientOf(p)
	if err != nil {
		p.Kill()
		return nil, nil, err
	}
	got, err := c.FastPath(context.Background())
	if err != nil {
		p.Kill()
		return nil, nil, fmt.Errorf("codec plugin info: %w", err)
	}
	if got != fast {
		p.Kill()
		return nil, nil, fmt.Errorf("codec plugin: shared-memory path = %v, want %v", got, fast)
	}
	return p, c, nil
}

// codecPath is one way to reach the codec.
type codecPath struct {
	key, name string
	c         codec.Codec
	set       *codecSet
	batch     int
}

// measureCodec adds codec encode and decode MB/s for 1 MiB segments,
// 3-of-10, on one goroutine: in process, through a plugin process on the
// shared-memory path, and through one on the gRPC fallback. A plugin path's
// calls are interleaved with in-process calls on the same sizes, and its
// ratio is to that in-process figure, so load on the machine cancels out.
// Each figure is of the median batch time: a burst of other work that
// stalls a few batches does not move it.
func measureCodec(ctx context.Context, r *Report, tarnBin string, d time.Duration) error {
	inproc := codecreedsolomon.New()
	ref, err := newCodecSet(codecBatch, nil)
	if err != nil {
		return err
	}
	fastProc, fast, err := startCodec(tarnBin, true)
	if err != nil {
		return fmt.Errorf("start codec plugin with shared memory: %w", err)
	}
	defer fastProc.Kill()
	slowProc, slow, err := startCodec(tarnBin, false)
	if err != nil {
		return fmt.Errorf("start codec plugin on gRPC: %w", err)
	}
	defer slowProc.Kill()
	fastSet, err := newCodecSet(codecBatch, fast)
	if err != nil {
		return err
	}
	defer fastSet.release()
	slowSet, err := newCodecSet(streamBatch, nil)
	if err != nil {
		return err
	}
	paths := []codecPath{
		{"inprocess", "in process", inproc, ref, codecBatch},
		{"shm", "plugin process, shared memory, batches of 32", fast, fastSet, codecBatch},
		{"grpc", "plugin process, gRPC fallback", slow, slowSet, streamBatch},
	}
	p := codecParams
	raw, err := rsWork(p.K, p.N)()
	if err != nil {
		return err
	}
	for _, op := range []string{"encode", "decode"} {
		decode := op == "decode"
		call := func(c codec.Codec, s *codecSet, n int) error {
			if decode {
				return codec.DecodeBatch(ctx, c, p, s.djobs[:n])
			}
			return codec.EncodeBatch(ctx, c, p, s.ejobs[:n])
		}
		for _, cp := range paths {
			// The reference runs between the path's calls on as many
			// bytes: the in-process codec for a plugin path, the bare
			// library for an in-process encode, nothing for an
			// in-process decode.
			var ref func(n int) error
			refKey := "codec." + op + ".inprocess (interleaved)"
			switch {
			case cp.key != "inprocess":
				ref = func(n int) error { return call(inproc, paths[0].set, n) }
			case !decode:
				refKey = "reedsolomon.encode (interleaved)"
				ref = func(n int) error {
					for range n {
						if _, err := raw(); err != nil {
							return err
						}
					}
					return nil
				}
			}
			var took, refTook []time.Duration // per batch
			cp.set.scramble(decode)
			for start := time.Now(); time.Since(start) < d || len(took) < minSamples; {
				if err := ctx.Err(); err != nil {
					return err
				}
				t0 := time.Now()
				if err := call(cp.c, cp.set, cp.batch); err != nil {
					return fmt.Errorf("codec %s %s: %w", cp.name, op, err)
				}
				t1 := time.Now()
				took = append(took, t1.Sub(t0))
				if ref != nil {
					if err := ref(cp.batch); err != nil {
						return fmt.Errorf("codec reference %s: %w", op, err)
					}
					refTook = append(refTook, time.Since(t1))
				}
			}
			if err := cp.set.check(cp.name + " " + op); err != nil {
				return err
			}
			batchBytes := float64(cp.batch * segSize)
			f := Figure{
				Key:   "codec." + op + "." + cp.key,
				Name:  "codec " + op + " 1 MiB 3-of-10, " + cp.name,
				Value: batchBytes / median(took).Seconds() / 1e6, Unit: "MB/s",
			}
			if ref != nil {
				f.Ceiling = refKey
				f.CeilingValue = batchBytes / median(refTook).Seconds() / 1e6
				f.Ratio = f.Value / f.CeilingValue
			}
			if decode && cp.key == "inprocess" {
				f.Note = "decode from the 3 parity blocks (the costliest case)"
			}
			r.add(f)
		}
	}
	return nil
}
